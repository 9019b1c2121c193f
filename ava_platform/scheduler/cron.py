"""The cron loop: queues a job for each due schedule slot, exactly once.

One tick: for every schedule whose `next_run_at` has come, take the latest slot at or before
now (so a platform that was down for many slots queues one job, not one per missed slot),
and claim it in one transaction that also moves `next_run_at` past now (service/crontab.py).
Only the claimer of a slot queues its job, and it does so with the idempotency key
`schedule:<id>:<slot>`, so re-queuing a claimed slot after a crash (runs left `pending` are
resumed first thing on start) returns the same job instead of a second one. A paused,
deprecated or sourceless worker's slot is recorded `skipped`.

Time comes from the injected Clock; tests call `tick()` directly with a ManualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from ava_platform.clock import Clock, iso, parse_iso
from ava_platform.errors import AvaError, Conflict
from ava_platform.log import get_logger
from ava_platform.models import Role, Schedule, ScheduleRunStatus, Trigger
from ava_platform.service import crontab
from ava_platform.service.auth import Principal
from ava_platform.service.jobs import JobService
from ava_platform.store.schedules import ScheduleStore

log = get_logger("ava.cron")
MAX_SLEEP_S = 30.0
MIN_SLEEP_S = 0.05
BATCH = 100
# where a schedule that can never run again is parked: out of every due() batch, so it neither
# fills the batch (tick() would re-read the same rows forever) nor is retried on every tick
NEVER = iso(datetime(9999, 12, 31, 23, 59, tzinfo=UTC))


class CronLoop:
    def __init__(self, *, store: ScheduleStore, jobs: JobService, clock: Clock) -> None:
        self._store = store
        self._jobs = jobs
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resumed = False

    async def tick(self) -> int:
        """Fires every due slot; returns how many slots this call claimed."""
        if not self._resumed:
            await self._resume_pending()
            self._resumed = True
        claimed = 0
        while True:
            now = self._clock.now()
            due = await self._store.due(iso(now), BATCH)
            for schedule in due:
                claimed += await self._fire_due(schedule, now)
            if len(due) < BATCH:
                return claimed

    async def _fire_due(self, schedule: Schedule, now: datetime) -> int:
        try:
            slot = crontab.latest_at_or_before(schedule.cron, schedule.timezone, now)
            following = crontab.next_after(schedule.cron, schedule.timezone, now)
        except (ValueError, KeyError, OverflowError) as exc:
            # a zone that vanished from the tz database, or a cron with no slot left (one
            # stored before such crons were refused): park it and record why, once
            log.error("schedule_unusable", schedule_id=schedule.id, error=str(exc))
            await self._park(schedule, now, f"schedule can never run: {type(exc).__name__}")
            return 0
        won = await self._store.claim(
            schedule.id,
            slot=iso(slot),
            seen_next=schedule.next_run_at,
            new_next=iso(following),
            now=iso(now),
        )
        if won:
            await self._queue(schedule, iso(slot))
        return 1 if won else 0

    async def _park(self, schedule: Schedule, now: datetime, reason: str) -> None:
        slot = schedule.next_run_at
        won = await self._store.claim(
            schedule.id, slot=slot, seen_next=slot, new_next=NEVER, now=iso(now)
        )
        if won:
            await self._store.finish_run(schedule.id, slot, ScheduleRunStatus.FAILED, reason=reason)

    async def _queue(self, schedule: Schedule, slot: str) -> None:
        who = Principal(schedule.tenant_id, schedule.created_by, Role.SYSTEM_ADMIN)
        try:
            job, _ = await self._jobs.trigger(
                who,
                schedule.worker_id,
                schedule.input,
                idempotency_key=f"schedule:{schedule.id}:{slot}",
                trigger=Trigger.SCHEDULE,
                schedule_id=schedule.id,
            )
        except Conflict as exc:
            await self._store.finish_run(
                schedule.id, slot, ScheduleRunStatus.SKIPPED, reason=exc.message
            )
            log.info("schedule_skipped", schedule_id=schedule.id, slot=slot, reason=exc.code)
            return
        except AvaError as exc:
            await self._store.finish_run(
                schedule.id, slot, ScheduleRunStatus.FAILED, reason=exc.message
            )
            log.warning("schedule_failed", schedule_id=schedule.id, slot=slot, reason=exc.code)
            return
        await self._store.finish_run(schedule.id, slot, ScheduleRunStatus.QUEUED, job_id=job.id)
        log.info("schedule_fired", schedule_id=schedule.id, slot=slot, job_id=job.id)

    async def _resume_pending(self) -> None:
        """Slots claimed by a run that stopped before it recorded their job."""
        for run in await self._store.pending():
            schedule = await self._store.get(None, run.schedule_id)
            if schedule is None:
                await self._store.finish_run(
                    run.schedule_id, run.slot, ScheduleRunStatus.FAILED, reason="schedule deleted"
                )
                continue
            await self._queue(schedule, run.slot)

    # -- the background loop --------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ava-cron")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.tick()
                delay = await self._until_next()
            except Exception as exc:
                log.error("cron_tick_failed", error=f"{type(exc).__name__}: {exc}")
                delay = MAX_SLEEP_S / 10
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _until_next(self) -> float:
        earliest = await self._store.earliest()
        if earliest is None:
            return MAX_SLEEP_S
        delay = (parse_iso(earliest) - self._clock.now()).total_seconds()
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, delay))
