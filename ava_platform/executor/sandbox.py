"""The engine's side of the service's Sandbox seam (service/sandbox.py): the egress guard's
status and the runtimes `docker info` lists, read fresh at most every few seconds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ava_platform.errors import ExecutorError
from ava_platform.executor.egress import EgressGuard
from ava_platform.executor.engine import engine_client
from ava_platform.executor.swarm_egress import SwarmEgress

RUNTIMES_TTL_S = 5.0


class EngineSandbox:
    def __init__(
        self,
        guard: EgressGuard | SwarmEgress,
        base_url: str | None = None,
        *,
        services: bool = False,
    ) -> None:
        # services (the swarm executor) cannot choose a task's runtime: runc only, so a
        # worker asking for gVisor is refused rather than run without it
        self._services = services
        self.guard = guard
        self._base_url = base_url
        self._client: Any = None
        self._runtimes: tuple[float, frozenset[str]] | None = None

    async def prepare(self) -> None:
        """At start: the managed network and its rules, or the reason they are missing."""
        await asyncio.to_thread(self.guard.prepare)

    def egress_problem(self) -> str | None:
        status = self.guard.status
        return status.reason if status is not None and not status.ready else None

    async def runtimes(self) -> frozenset[str]:
        if self._services:
            return frozenset({"runc"})
        now = time.monotonic()
        if self._runtimes is None or now - self._runtimes[0] > RUNTIMES_TTL_S:
            try:
                names = await asyncio.to_thread(self._engine_runtimes)
            except Exception as exc:
                raise ExecutorError(f"cannot read the engine's runtimes: {exc}") from exc
            self._runtimes = (now, names)
        return self._runtimes[1]

    def _engine_runtimes(self) -> frozenset[str]:
        if self._client is None:
            self._client = engine_client(self._base_url, timeout_s=10).api
        return frozenset((self._client.info().get("Runtimes") or {}).keys())
