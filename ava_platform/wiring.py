"""The composition root: builds the store, services, executor and scheduler from Settings."""

from __future__ import annotations

from ava_platform.clock import Clock, SystemClock
from ava_platform.config import Settings
from ava_platform.service.workers import WorkerService
from ava_platform.store.db import Database
from ava_platform.store.workers import WorkerStore


class Platform:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.db_path)
        self.worker_store = WorkerStore(self.db)
        self.workers = WorkerService(self.worker_store, self.clock)

    async def start(self) -> None:
        await self.db.open()

    async def stop(self) -> None:
        await self.db.close()

    async def readiness(self) -> dict[str, bool]:
        return {"store": await self.db.ping()}
