"""The Executor seam: run one attempt in a fresh container and report what happened.

Implementations: `docker.DockerExecutor` (the real engine) and `fake.FakeExecutor` (unit tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec

# (stream, raw bytes) as they arrive; called on the event loop
OutputSink = Callable[[str, bytes], None]
# told the attempt's container id before the job reaches it, so recovery can find it
BindSink = Callable[[str], Awaitable[None]]


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    tenant_id: str
    worker_id: str
    attempt: int
    image: str
    envelope: bytes  # one JSON line: the shim's whole input, secrets included
    memory_mb: int
    cpus: float
    network_enabled: bool
    timeout_s: float
    isolation: str = "container"  # models.Isolation's value


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    exit_code: int | None
    timed_out: bool = False
    oom_killed: bool = False
    cancelled: bool = False
    ended_by_frame: bool = False  # the result frame came before the engine reported the exit
    container_id: str | None = None
    start_latency_s: float | None = None


class ContainerRef(msgspec.Struct, frozen=True):
    container_id: str
    job_id: str
    attempt: int
    running: bool


class Executor(Protocol):
    async def run(
        self,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None = None,
        result_seen: asyncio.Event | None = None,
    ) -> RunResult: ...

    def pool_stats(self) -> dict[str, Any]: ...

    async def list_containers(self) -> list[ContainerRef]: ...

    async def kill_and_remove(self, container_id: str) -> None: ...

    async def image_exists(self, image: str) -> bool: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
