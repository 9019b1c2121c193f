"""In-process notifications between the API and the scheduler: a job was queued, a job's log
grew, a job finished, a user asked to cancel. Lost wake-ups only cost latency: every waiter
also re-reads the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class JobEvents:
    def __init__(self) -> None:
        self._changed: dict[str, asyncio.Event] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._on_enqueued: list[Callable[[], None]] = []
        self._on_cancel: list[Callable[[str], None]] = []

    def subscribe(
        self,
        *,
        enqueued: Callable[[], None] | None = None,
        cancel: Callable[[str], None] | None = None,
    ) -> None:
        if enqueued:
            self._on_enqueued.append(enqueued)
        if cancel:
            self._on_cancel.append(cancel)

    def enqueued(self) -> None:
        for callback in self._on_enqueued:
            callback()

    def cancel_requested(self, job_id: str) -> None:
        for callback in self._on_cancel:
            callback(job_id)

    def changed(self, job_id: str) -> None:
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()

    def finished(self, job_id: str) -> None:
        self.changed(job_id)
        event = self._finished.pop(job_id, None)
        if event is not None:
            event.set()

    async def wait_changed(self, job_id: str, timeout_s: float) -> None:
        event = self._changed.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    async def wait_finished(self, job_id: str, timeout_s: float) -> None:
        event = self._finished.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)
