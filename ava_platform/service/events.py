"""Notifications between the API and the scheduler: a job was queued, a job's log grew, a job
finished, a user asked to cancel. In one process they are in-memory; with a relay (PostgreSQL's
LISTEN/NOTIFY, wired for a multi-process platform) every event is also told to the other
processes, and theirs arrive here: a cancel reaches the process running the job, a log line or
an end written on one process wakes a follower or a `?wait` on another, a job queued anywhere
wakes an idle scheduler. Lost wake-ups only cost latency: every waiter also re-reads the store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

# the kinds of event a relay carries
ENQUEUED, CANCEL, CHANGED, FINISHED = "enqueued", "cancel", "changed", "finished"
Deliver = Callable[[str, str], None]  # (kind, job_id) from another process


class Relay(Protocol):
    """Carries events to the platform's other processes and theirs back."""

    async def start(self, deliver: Deliver) -> None: ...

    async def stop(self) -> None: ...

    def publish(self, kind: str, job_id: str) -> None: ...


class JobEvents:
    def __init__(self, relay: Relay | None = None) -> None:
        self._relay = relay
        self._changed: dict[str, asyncio.Event] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._on_enqueued: list[Callable[[], None]] = []
        self._on_cancel: list[Callable[[str], None]] = []
        self._on_finished: list[Callable[[str], None]] = []

    async def start(self) -> None:
        if self._relay is not None:
            await self._relay.start(self._deliver)

    async def stop(self) -> None:
        if self._relay is not None:
            await self._relay.stop()

    def subscribe(
        self,
        *,
        enqueued: Callable[[], None] | None = None,
        cancel: Callable[[str], None] | None = None,
        finished: Callable[[str], None] | None = None,
    ) -> None:
        if finished:
            self._on_finished.append(finished)
        if enqueued:
            self._on_enqueued.append(enqueued)
        if cancel:
            self._on_cancel.append(cancel)

    def enqueued(self) -> None:
        self._publish(ENQUEUED, "")
        self._enqueued()

    def cancel_requested(self, job_id: str) -> None:
        self._publish(CANCEL, job_id)
        self._cancel(job_id)

    def changed(self, job_id: str) -> None:
        self._publish(CHANGED, job_id)
        self._changed_here(job_id)

    def finished(self, job_id: str) -> None:
        self._publish(FINISHED, job_id)
        self._finished_here(job_id)

    async def wait_changed(self, job_id: str, timeout_s: float) -> None:
        event = self._changed.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    async def wait_finished(self, job_id: str, timeout_s: float) -> None:
        event = self._finished.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)

    # -- here only ---------------------------------------------------------------------------

    def _publish(self, kind: str, job_id: str) -> None:
        if self._relay is not None:
            self._relay.publish(kind, job_id)

    def _deliver(self, kind: str, job_id: str) -> None:
        """An event from another process: acted on here, never relayed again."""
        handlers = {
            ENQUEUED: lambda _: self._enqueued(),
            CANCEL: self._cancel,
            CHANGED: self._changed_here,
            FINISHED: self._finished_here,
        }
        handler = handlers.get(kind)
        if handler is not None:
            handler(job_id)

    def _enqueued(self) -> None:
        for callback in self._on_enqueued:
            callback()

    def _cancel(self, job_id: str) -> None:
        for callback in self._on_cancel:
            callback(job_id)

    def _changed_here(self, job_id: str) -> None:
        event = self._changed.pop(job_id, None)
        if event is not None:
            event.set()

    def _finished_here(self, job_id: str) -> None:
        for callback in self._on_finished:
            callback(job_id)
        self._changed_here(job_id)
        event = self._finished.pop(job_id, None)
        if event is not None:
            event.set()
