"""Schedule use cases: create (validated cron and zone; the next run time computed), list,
get, delete, and the runs a schedule fired (queued or skipped)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.errors import Conflict, NotFound, PayloadTooLarge
from ava_platform.ids import new_id
from ava_platform.models import Schedule, ScheduleCreate, ScheduleRun, WorkerStatus
from ava_platform.service import crontab
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.jobs import MAX_INPUT_BYTES
from ava_platform.service.validation import Problems
from ava_platform.service.workers import WorkerService
from ava_platform.store.schedules import ScheduleStore

MAX_SCHEDULES_PER_WORKER = 100


class ScheduleService:
    def __init__(
        self,
        store: ScheduleStore,
        workers: WorkerService,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._workers = workers
        self._clock = clock
        self._on_change = on_change

    async def create(self, who: Principal, worker_id: str, data: ScheduleCreate) -> Schedule:
        who.require(Permission.MANAGE)
        worker = await self._workers.get(who, worker_id)
        if worker.status is WorkerStatus.DEPRECATED:
            raise Conflict("a deprecated worker cannot be scheduled", code="worker_deprecated")
        cron = " ".join(data.cron.split())
        now = self._clock.now()
        problems = Problems()
        crontab.check(problems, cron, data.timezone, now)
        problems.raise_if_any()
        _check_input(data.input)
        if await self._store.count(who.tenant_id, worker.id) >= MAX_SCHEDULES_PER_WORKER:
            raise Conflict(
                f"a worker may have at most {MAX_SCHEDULES_PER_WORKER} schedules",
                code="too_many_schedules",
            )
        schedule = Schedule(
            id=new_id("sch"),
            tenant_id=who.tenant_id,
            worker_id=worker.id,
            cron=cron,
            timezone=data.timezone,
            input=data.input,
            next_run_at=iso(crontab.next_after(cron, data.timezone, now)),
            created_at=iso(now),
            created_by=who.user_id,
        )
        await self._store.insert(schedule)
        self._on_change()
        return schedule

    async def page(
        self, who: Principal, worker_id: str, *, page: int, per_page: int
    ) -> tuple[list[Schedule], int]:
        worker = await self._workers.get(who, worker_id)
        return await self._store.page(
            who.tenant_id, worker.id, limit=per_page, offset=(page - 1) * per_page
        )

    async def get(self, who: Principal, worker_id: str, schedule_id: str) -> Schedule:
        worker = await self._workers.get(who, worker_id)
        schedule = await self._store.get(who.tenant_id, schedule_id)
        if schedule is None or schedule.worker_id != worker.id:
            raise NotFound(f"schedule {schedule_id} not found", code="schedule_not_found")
        return schedule

    async def delete(self, who: Principal, worker_id: str, schedule_id: str) -> None:
        who.require(Permission.MANAGE)
        worker = await self._workers.get(who, worker_id)
        if not await self._store.delete(who.tenant_id, worker.id, schedule_id):
            raise NotFound(f"schedule {schedule_id} not found", code="schedule_not_found")

    async def runs(
        self, who: Principal, worker_id: str, schedule_id: str, *, page: int, per_page: int
    ) -> tuple[list[ScheduleRun], int]:
        schedule = await self.get(who, worker_id, schedule_id)
        return await self._store.runs(schedule.id, limit=per_page, offset=(page - 1) * per_page)


def _check_input(value: Any) -> None:
    if len(msgspec.json.encode(value)) > MAX_INPUT_BYTES:
        raise PayloadTooLarge(f"input exceeds {MAX_INPUT_BYTES} bytes", code="input_too_large")
