"""Cron schedules with an injected ManualClock and the loop's tick() called directly: no sleeps,
a real SQLite file, the real JobService (the fake executor is never reached: nothing claims)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest

from ava_platform.clock import ManualClock, iso
from ava_platform.config import load_settings
from ava_platform.errors import Conflict, Invalid
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.models import (
    JobStatus,
    PatchableStatus,
    Role,
    ScheduleCreate,
    Trigger,
    Worker,
    WorkerCreate,
    WorkerPatch,
)
from ava_platform.service import crontab
from ava_platform.service.auth import Principal
from ava_platform.service.jobs import JobQuery
from ava_platform.wiring import Platform
from tests.support import server_env

T0 = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
WHO = Principal("ten_cron", "usr_cron", Role.ADMIN)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- cron arithmetic ----------------------------------------------------------------------------


def test_next_and_latest_slots_in_utc() -> None:
    assert crontab.next_after("* * * * *", "UTC", T0) == at("2026-03-02T12:01:00")
    assert crontab.next_after("* * * * *", "UTC", at("2026-03-02T12:01:00")) == at(
        "2026-03-02T12:02:00"
    )
    assert crontab.latest_at_or_before("* * * * *", "UTC", at("2026-03-02T12:01:00")) == at(
        "2026-03-02T12:01:00"
    )
    assert crontab.latest_at_or_before("*/5 * * * *", "UTC", at("2026-03-02T12:14:59.9")) == at(
        "2026-03-02T12:10:00"
    )


def test_slots_follow_the_schedules_time_zone_across_dst() -> None:
    # 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer (DST began 2026-03-29)
    before = crontab.next_after("0 9 * * *", "Europe/Paris", at("2026-03-28T10:00:00"))
    after = crontab.next_after("0 9 * * *", "Europe/Paris", before)
    assert before == at("2026-03-29T07:00:00") and after == at("2026-03-30T07:00:00")
    assert crontab.next_after("0 9 * * *", "Europe/Paris", at("2026-01-10T00:00:00")) == at(
        "2026-01-10T08:00:00"
    )


@pytest.mark.parametrize(
    ("cron", "tz", "field"),
    [
        ("* * * *", "UTC", "cron"),
        ("* * * * * *", "UTC", "cron"),
        ("61 * * * *", "UTC", "cron"),
        ("* * * * *", "Mars/Olympus", "timezone"),
    ],
)
def test_bad_cron_or_zone_is_a_field_error(cron: str, tz: str, field: str) -> None:
    from ava_platform.service.validation import Problems

    problems = Problems()
    crontab.check(problems, cron, tz)
    assert [p["field"] for p in problems.items] == [field]


# -- the loop -------------------------------------------------------------------------------------


@asynccontextmanager
async def platform_at(
    db: Path, clock: ManualClock, database_env: dict[str, str]
) -> AsyncIterator[Platform]:
    """One 'run' of the platform on `db` (or the database of `database_env`); leaving it is a
    stop, entering again a restart."""
    settings = load_settings(server_env(db, **database_env))
    platform = Platform(
        settings,
        clock=clock,
        executor=FakeExecutor(),
        run_scheduler=False,
        builder=FakeImageBuilder(),
    )
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def make_worker(platform: Platform) -> Worker:
    body = WorkerCreate(name="cron", runtime="python", source_code="def handler(i, e): return i")  # type: ignore[arg-type]
    return await platform.workers.create(WHO, body)


async def schedule_jobs(platform: Platform, schedule_id: str) -> list[str]:
    jobs, _ = await platform.jobs.page(WHO, JobQuery(per_page=100))
    return [j.id for j in jobs if j.schedule_id == schedule_id]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


async def test_every_minute_schedule_fires_once_per_slot(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    async with platform_at(tmp_path / "ava.db", clock, database_env) as platform:
        worker = await make_worker(platform)
        sch = await platform.schedules.create(
            WHO, worker.id, ScheduleCreate(cron="* * * * *", input={"n": 1})
        )
        assert sch.id.startswith("sch_") and sch.next_run_at == iso(at("2026-03-02T12:01:00"))
        clock.set(at("2026-03-02T12:00:59"))
        assert await platform.cron.tick() == 0
        clock.set(at("2026-03-02T12:01:00"))
        assert await platform.cron.tick() == 1
        assert await platform.cron.tick() == 0  # same instant: nothing new
        clock.advance(30)
        assert await platform.cron.tick() == 0
        clock.advance(30)
        assert await platform.cron.tick() == 1
        job_ids = await schedule_jobs(platform, sch.id)
        assert len(job_ids) == 2
        job = await platform.jobs.get(WHO, job_ids[0])
        assert job.trigger is Trigger.SCHEDULE and job.status is JobStatus.QUEUED
        assert job.input == {"n": 1} and job.created_by == "usr_cron"
        shown = await platform.schedules.get(WHO, worker.id, sch.id)
        assert shown.next_run_at == iso(at("2026-03-02T12:03:00"))
        assert shown.last_run is not None and shown.last_run.status.value == "queued"
        assert shown.last_run.slot == iso(at("2026-03-02T12:02:00"))


async def test_paused_worker_slot_is_skipped_and_recorded(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    async with platform_at(tmp_path / "ava.db", clock, database_env) as platform:
        worker = await make_worker(platform)
        sch = await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))
        await platform.workers.update(WHO, worker.id, WorkerPatch(status=PatchableStatus.PAUSED))
        clock.set(at("2026-03-02T12:01:00"))
        assert await platform.cron.tick() == 1
        assert await schedule_jobs(platform, sch.id) == []
        runs, total = await platform.schedules.runs(WHO, worker.id, sch.id, page=1, per_page=10)
        assert total == 1 and runs[0].status.value == "skipped"
        assert runs[0].reason is not None and "paused" in runs[0].reason
        await platform.workers.update(WHO, worker.id, WorkerPatch(status=PatchableStatus.ACTIVE))
        clock.set(at("2026-03-02T12:02:00"))
        assert await platform.cron.tick() == 1
        assert len(await schedule_jobs(platform, sch.id)) == 1


async def test_runs_missed_while_down_are_queued_once_on_start(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    db = tmp_path / "ava.db"
    async with platform_at(db, clock, database_env) as platform:
        worker = await make_worker(platform)
        sch = await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))
    clock.set(at("2026-03-02T12:45:10"))  # down for 44 slots
    async with platform_at(db, clock, database_env) as platform:
        assert await platform.cron.tick() == 1
        assert await platform.cron.tick() == 0
        assert len(await schedule_jobs(platform, sch.id)) == 1
        runs, _ = await platform.schedules.runs(WHO, worker.id, sch.id, page=1, per_page=10)
        assert [r.slot for r in runs] == [iso(at("2026-03-02T12:45:00"))]
        shown = await platform.schedules.get(WHO, worker.id, sch.id)
        assert shown.next_run_at == iso(at("2026-03-02T12:46:00"))


async def test_a_restart_exactly_on_a_tick_never_fires_the_slot_twice(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    db = tmp_path / "ava.db"
    async with platform_at(db, clock, database_env) as platform:
        worker = await make_worker(platform)
        sch = await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))
        clock.set(at("2026-03-02T12:01:00"))
        assert await platform.cron.tick() == 1
    async with platform_at(db, clock, database_env) as platform:  # restarted on the same instant
        assert await platform.cron.tick() == 0
        assert len(await schedule_jobs(platform, sch.id)) == 1


async def test_a_slot_claimed_by_a_run_that_crashed_is_queued_once(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    db = tmp_path / "ava.db"
    slot = iso(at("2026-03-02T12:01:00"))
    async with platform_at(db, clock, database_env) as platform:
        worker = await make_worker(platform)
        sch = await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))
        clock.set(at("2026-03-02T12:01:00"))
        # the first half of a tick, then a crash: the slot is claimed, no job yet
        assert await platform.schedule_store.claim(
            sch.id,
            slot=slot,
            seen_next=sch.next_run_at,
            new_next=iso(at("2026-03-02T12:02:00")),
            now=slot,
        )
        # a second claimant of the same slot (another process, a replay) loses
        assert not await platform.schedule_store.claim(
            sch.id, slot=slot, seen_next=sch.next_run_at, new_next="x", now=slot
        )
    for _ in range(2):  # two restarts on the same instant
        async with platform_at(db, clock, database_env) as platform:
            assert await platform.cron.tick() == 0
            assert len(await schedule_jobs(platform, sch.id)) == 1
    async with platform_at(db, clock, database_env) as platform:
        # even a replay of the job queuing itself is idempotent for that slot
        schedule = await platform.schedule_store.get(None, sch.id)
        assert schedule is not None
        await platform.cron._queue(schedule, slot)
        assert len(await schedule_jobs(platform, sch.id)) == 1
        runs, _ = await platform.schedules.runs(WHO, worker.id, sch.id, page=1, per_page=10)
        assert [r.status.value for r in runs] == ["queued"]


async def test_schedule_rules(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    async with platform_at(tmp_path / "ava.db", clock, database_env) as platform:
        worker = await make_worker(platform)
        with pytest.raises(Invalid):
            await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * * *"))
        with pytest.raises(Invalid):
            await platform.schedules.create(
                WHO, worker.id, ScheduleCreate(cron="* * * * *", timezone="Nowhere/Land")
            )
        await platform.workers.deprecate(WHO, worker.id)
        with pytest.raises(Conflict):
            await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))


def test_a_cron_that_never_occurs_is_a_cron_error() -> None:
    from ava_platform.service.validation import Problems

    problems = Problems()
    crontab.check(problems, "0 0 31 2 *", "UTC", T0)
    assert [p["field"] for p in problems.items] == ["cron"]
    assert "never occurs" in problems.items[0]["message"]
    fine = Problems()
    crontab.check(fine, "0 0 29 2 *", "UTC", T0)  # leap days do occur
    assert fine.items == []


async def test_a_stored_schedule_that_can_never_run_is_parked_once(
    tmp_path: Path, clock: ManualClock, database_env: dict[str, str]
) -> None:
    """One stored before such crons were refused: it is recorded failed and leaves the due
    batch, instead of failing on every tick (and, 100 of them, spinning tick() forever)."""
    async with platform_at(tmp_path / "ava.db", clock, database_env) as platform:
        worker = await make_worker(platform)
        good = await platform.schedules.create(WHO, worker.id, ScheduleCreate(cron="* * * * *"))
        bad = msgspec.structs.replace(good, id="sch_never", cron="0 0 31 2 *")
        await platform.schedule_store.insert(bad)
        clock.advance(61)
        await asyncio.wait_for(platform.cron.tick(), 10)
        await asyncio.wait_for(platform.cron.tick(), 10)
        runs, total = await platform.schedule_store.runs("sch_never", limit=10, offset=0)
        assert total == 1 and runs[0].status.value == "failed"
        assert (await platform.schedule_store.get(None, "sch_never")).next_run_at.startswith("9999")
        assert len(await schedule_jobs(platform, good.id)) == 1


# -- the HTTP surface -------------------------------------------------------------------------------


def test_schedules_api(api: httpx.Client, tenant_headers: Callable[..., dict[str, str]]) -> None:
    worker = api.post(
        "/workers", json={"name": "s", "runtime": "python", "source_code": "def handler(i, e): 1"}
    ).json()
    base = f"/workers/{worker['id']}/schedules"
    body = {"cron": "*/5 * * * *", "timezone": "America/New_York", "input": {"k": 1}}
    created = api.post(base, json=body)
    assert created.status_code == 201, created.text
    sch = created.json()
    assert sch["id"].startswith("sch_") and sch["next_run_at"].endswith("Z")
    assert sch["cron"] == "*/5 * * * *" and sch["input"] == {"k": 1} and sch["last_run"] is None
    assert api.get(base).json()["meta"]["total"] == 1
    assert api.get(f"{base}/{sch['id']}").json()["id"] == sch["id"]
    assert api.get(f"{base}/{sch['id']}/runs").json()["data"] == []
    bad = api.post(base, json={"cron": "every minute"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "cron"
    assert api.post(base, json={"cron": "* * * * *", "timezone": "X/Y"}).status_code == 422
    assert api.post(base, json={"cron": "* * * * *", "id": "sch_x"}).status_code == 422
    tenant = api.headers["x-tenant-id"]
    viewer = tenant_headers(tenant=tenant, role="tenant-viewer")
    operator = tenant_headers(tenant=tenant, role="tenant-operator")
    assert api.post(base, json=body, headers=viewer).status_code == 403
    assert api.post(base, json=body, headers=operator).status_code == 403
    assert api.get(base, headers=viewer).status_code == 200
    assert api.delete(f"{base}/{sch['id']}", headers=operator).status_code == 403
    assert api.get(f"{base}/{sch['id']}", headers=tenant_headers()).status_code == 404
    assert api.delete(f"{base}/{sch['id']}").status_code == 204
    assert api.get(f"{base}/{sch['id']}").status_code == 404
    assert api.delete(f"{base}/{sch['id']}").status_code == 404
