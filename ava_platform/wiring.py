"""The composition root: builds the store, services, executor and scheduler from Settings."""

from __future__ import annotations

import hashlib

from ava_platform.clock import Clock, SystemClock
from ava_platform.config import Settings
from ava_platform.executor.base import Executor
from ava_platform.executor.docker import DockerExecutor
from ava_platform.scheduler.loop import Scheduler
from ava_platform.scheduler.runner import AttemptRunner
from ava_platform.service.events import JobEvents
from ava_platform.service.jobs import JobService
from ava_platform.service.secrets_source import EmptySecrets, SecretSource
from ava_platform.service.workers import WorkerService
from ava_platform.store.db import Database
from ava_platform.store.jobs import JobStore
from ava_platform.store.logs import LogStore
from ava_platform.store.workers import VersionStore, WorkerStore


def platform_id(settings: Settings) -> str:
    """One platform is one store: its containers are labelled with this, derived from the
    store's absolute path, so a restart on the same file finds its own orphans."""
    return hashlib.sha256(str(settings.db_path.resolve()).encode()).hexdigest()[:16]


class Platform:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        executor: Executor | None = None,
        run_scheduler: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.db_path)
        self.events = JobEvents()
        self.executor = executor or DockerExecutor(
            platform_id=platform_id(settings), base_url=settings.docker_host
        )
        self.worker_store = WorkerStore(self.db)
        self.version_store = VersionStore(self.db)
        self.job_store = JobStore(self.db)
        self.log_store = LogStore(self.db)
        self.secrets: SecretSource = EmptySecrets()
        self.workers = WorkerService(self.worker_store, self.version_store, self.clock)
        self.jobs = JobService(
            jobs=self.job_store,
            logs=self.log_store,
            workers=self.workers,
            events=self.events,
            clock=self.clock,
        )
        self.runner = AttemptRunner(
            settings=settings,
            clock=self.clock,
            jobs=self.job_store,
            logs=self.log_store,
            workers=self.worker_store,
            versions=self.version_store,
            secrets=self.secrets,
            executor=self.executor,
            events=self.events,
        )
        self.scheduler = Scheduler(
            settings=settings,
            clock=self.clock,
            jobs=self.job_store,
            runner=self.runner,
            executor=self.executor,
        )
        self.events.subscribe(enqueued=self.scheduler.wake, cancel=self.scheduler.cancel)
        self._run_scheduler = run_scheduler

    async def start(self) -> None:
        await self.db.open()
        if self._run_scheduler:
            await self.scheduler.start()

    async def stop(self) -> None:
        if self._run_scheduler:
            await self.scheduler.stop()
        await self.executor.close()
        await self.db.close()

    async def readiness(self) -> dict[str, bool]:
        return {"store": await self.db.ping(), "docker": await self.executor.ping()}
