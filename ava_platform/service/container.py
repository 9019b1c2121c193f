"""What the API needs from the running platform. `ava_platform.wiring` builds the concrete one;
the API sees only this protocol, so it never imports the executor or the store."""

from __future__ import annotations

from typing import Protocol

from ava_platform.service.jobs import JobService
from ava_platform.service.workers import WorkerService


class Services(Protocol):
    workers: WorkerService
    jobs: JobService

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def readiness(self) -> dict[str, bool]: ...
