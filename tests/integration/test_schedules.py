"""A schedule's due slot runs a real job in a real container. The platform runs in-process with
a ManualClock; the cron loop's tick() is called directly, so no test waits for a minute."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ava_platform.clock import ManualClock
from ava_platform.config import load_settings
from ava_platform.models import JobStatus, Role, ScheduleCreate, Trigger, WorkerCreate
from ava_platform.service.auth import Principal
from ava_platform.wiring import Platform
from tests.integration import sources
from tests.support import server_env

pytestmark = pytest.mark.docker
WHO = Principal("ten_sched_it", "usr_sched", Role.ADMIN)


async def test_a_due_slot_runs_a_real_job(runtime_images: list[str], tmp_path: Path) -> None:
    clock = ManualClock(datetime.now(UTC).replace(second=30, microsecond=0))
    platform = Platform(load_settings(server_env(tmp_path / "ava.db")), clock=clock)
    await platform.start()
    await platform.cron.stop()  # the test drives the cron loop by hand
    try:
        body = WorkerCreate(name="sched", runtime="python", source_code=sources.PY_ECHO)  # type: ignore[arg-type]
        worker = await platform.workers.create(WHO, body)
        sch = await platform.schedules.create(
            WHO, worker.id, ScheduleCreate(cron="* * * * *", timezone="Asia/Tokyo", input={"x": 1})
        )
        clock.advance(30)
        assert await platform.cron.tick() == 1
        runs, _ = await platform.schedules.runs(WHO, worker.id, sch.id, page=1, per_page=5)
        job_id = runs[0].job_id
        assert job_id is not None
        for _ in range(600):
            job = await platform.jobs.get(WHO, job_id)
            if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
                break
            await asyncio.sleep(0.05)
        assert job.status is JobStatus.SUCCEEDED, job
        assert job.result == {"echo": {"x": 1}}
        assert job.trigger is Trigger.SCHEDULE and job.schedule_id == sch.id
    finally:
        await platform.stop()
