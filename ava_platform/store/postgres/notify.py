"""LISTEN/NOTIFY between the processes of one platform: each process listens on one channel
and publishes its job events there (`<origin> <kind> <job_id>`); its own come back to it and
are dropped by origin. One dedicated connection does both (a pooled one would return to the
pool still listening). A lost connection is reopened; events published meanwhile are lost,
which costs latency only (every waiter also re-reads the store)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg

from ava_platform.log import get_logger
from ava_platform.store.postgres.db import DRIVER_ERRORS

log = get_logger("ava.store.notify")
CHANNEL = "ava_events"
RETRY_S = 0.5
KEEPALIVE_S = 2.0
MAX_QUEUED = 10_000  # beyond, events are dropped (latency only) rather than memory grown


class PostgresRelay:
    def __init__(self, url: str) -> None:
        self._url = url
        self.origin = uuid.uuid4().hex[:12]
        self._outbox: asyncio.Queue[str] = asyncio.Queue(MAX_QUEUED)
        self._task: asyncio.Task[None] | None = None
        self._deliver: Callable[[str, str], None] = lambda _kind, _job: None
        self.connected = asyncio.Event()

    async def start(self, deliver: Callable[[str, str], None]) -> None:
        self._deliver = deliver
        self._task = asyncio.create_task(self._run(), name="ava-notify")
        with contextlib.suppress(TimeoutError):  # a slow start only delays cross-process wakes
            await asyncio.wait_for(self.connected.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def publish(self, kind: str, job_id: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(f"{self.origin} {kind} {job_id}")

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except DRIVER_ERRORS as exc:
                self.connected.clear()
                log.warning("notify_connection_lost", error=type(exc).__name__)
            await asyncio.sleep(RETRY_S)

    async def _session(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            self.connected.set()
            while True:
                try:
                    payload = await asyncio.wait_for(self._outbox.get(), KEEPALIVE_S)
                except TimeoutError:  # idle: make sure the listening connection still lives
                    await conn.execute("SELECT 1")
                    continue
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
        finally:
            with contextlib.suppress(*DRIVER_ERRORS):
                await conn.close(timeout=2)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, rest = payload.partition(" ")
        if origin == self.origin:
            return
        kind, _, job_id = rest.partition(" ")
        self._deliver(kind, job_id)
