"""The durable queue on both backends (a real SQLite file, a real PostgreSQL): atomic claims,
limits, stale answers dropped."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ava_platform.clock import SystemClock, utcnow
from ava_platform.models import (
    AttemptOutcome,
    JobStatus,
    Role,
    Runtime,
    WorkerCreate,
)
from ava_platform.service.auth import Principal
from ava_platform.service.workers import WorkerService
from ava_platform.store.database import Database
from ava_platform.store.jobs import JobStore
from ava_platform.store.workers import VersionStore, WorkerStore
from tests.queued import FAR, queued_job

ADMIN = Principal("ten_a", "usr_a", Role.ADMIN)


@pytest.fixture
def db(store_db: Database) -> Database:
    return store_db


async def _worker(db: Database, **kw: object) -> str:
    service = WorkerService(WorkerStore(db), VersionStore(db), SystemClock())
    worker = await service.create(
        ADMIN, WorkerCreate(name="w", runtime=Runtime.PYTHON, source_code="x", **kw)
    )  # type: ignore[arg-type]
    return worker.id


async def _enqueue(jobs: JobStore, worker_id: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        job = queued_job("ten_a", worker_id, {"i": i})
        await jobs.enqueue(job, msgspec.json.encode(job.input), None, "")
        ids.append(job.id)
    return ids


async def _claim(jobs: JobStore, max_running: int = 100) -> str | None:
    claimed = await jobs.claim_next(
        now=utcnow(), owner="o", lease_until=FAR, max_running=max_running
    )
    return claimed.job_id if claimed else None


async def test_concurrent_claims_never_take_the_same_job(db: Database) -> None:
    jobs = JobStore(db)
    ids = await _enqueue(jobs, await _worker(db), 20)
    claimed = await asyncio.gather(*(_claim(jobs) for _ in range(30)))
    taken = [c for c in claimed if c]
    assert sorted(taken) == sorted(ids)  # each once, none twice
    assert claimed.count(None) == 10


async def test_claims_respect_global_and_per_worker_limits(db: Database) -> None:
    jobs = JobStore(db)
    solo = await _worker(db, max_concurrency=1)
    free = await _worker(db)
    await _enqueue(jobs, solo, 3)
    await _enqueue(jobs, free, 3)
    got = [await _claim(jobs, max_running=3) for _ in range(5)]
    assert sum(1 for g in got if g) == 3
    running = await jobs.page("ten_a", status=JobStatus.RUNNING, worker_id=solo, limit=10, offset=0)
    assert running[1] == 1


async def test_an_old_attempts_answer_is_dropped(db: Database) -> None:
    jobs = JobStore(db)
    (job_id,) = await _enqueue(jobs, await _worker(db), 1)
    assert await _claim(jobs) == job_id
    ok = await jobs.finish_attempt(
        job_id,
        1,
        now=utcnow(),
        outcome=AttemptOutcome.FAILED,
        exit_code=1,
        error=None,
        result=None,
        status=JobStatus.QUEUED,
        next_attempt_at=utcnow(),
    )
    assert ok
    assert await _claim(jobs) == job_id  # attempt 2 runs
    late = await jobs.finish_attempt(
        job_id,
        1,
        now=utcnow(),
        outcome=AttemptOutcome.SUCCEEDED,
        exit_code=0,
        error=None,
        result="stale",
        status=JobStatus.SUCCEEDED,
        next_attempt_at=None,
    )
    assert late is False
    job = await jobs.get(None, job_id)
    assert job is not None and job.status is JobStatus.RUNNING and job.attempt == 2


async def test_a_retry_is_not_claimed_before_it_is_due(db: Database) -> None:
    jobs = JobStore(db)
    (job_id,) = await _enqueue(jobs, await _worker(db), 1)
    await _claim(jobs)
    await jobs.finish_attempt(
        job_id,
        1,
        now=utcnow(),
        outcome=AttemptOutcome.FAILED,
        exit_code=1,
        error=None,
        result=None,
        status=JobStatus.QUEUED,
        next_attempt_at=FAR,
    )
    assert await _claim(jobs) is None


async def test_jobs_are_claimed_first_in_first_out(db: Database) -> None:
    jobs = JobStore(db)
    first = await _worker(db)
    second = await _worker(db)
    ids = await _enqueue(jobs, first, 3) + await _enqueue(jobs, second, 3)
    claimed = [await _claim(jobs) for _ in range(6)]
    assert claimed == ids
    assert await _claim(jobs) is None


async def test_a_workers_limit_holds_under_concurrent_claims(db: Database) -> None:
    """Claimers side by side (separate connections on PostgreSQL) never run more of one
    worker's jobs than its max_concurrency, whoever the owners are."""
    jobs = JobStore(db)
    solo = await _worker(db, max_concurrency=2)
    await _enqueue(jobs, solo, 10)

    async def claim(owner: str) -> str | None:
        got = await jobs.claim_next(now=utcnow(), owner=owner, lease_until=FAR, max_running=10)
        return got.job_id if got else None

    claimed = await asyncio.gather(*(claim(f"o{i % 3}") for i in range(12)))
    assert sum(1 for c in claimed if c) == 2


async def test_max_running_is_per_owner(db: Database) -> None:
    jobs = JobStore(db)
    ids = await _enqueue(jobs, await _worker(db), 4)
    first = [await jobs.claim_next(now=utcnow(), owner="a", lease_until=FAR, max_running=1)]
    first.append(await jobs.claim_next(now=utcnow(), owner="a", lease_until=FAR, max_running=1))
    other = await jobs.claim_next(now=utcnow(), owner="b", lease_until=FAR, max_running=1)
    assert first[0] is not None and first[1] is None
    assert other is not None and {first[0].job_id, other.job_id} == set(ids[:2])


async def test_idempotent_enqueues_side_by_side_make_one_job(db: Database) -> None:
    jobs = JobStore(db)
    wid = await _worker(db)

    async def enqueue() -> tuple[str, bool]:
        job = queued_job("ten_a", wid, {})
        got, created = await jobs.enqueue(job, b"{}", "same-key", "")
        return got.id, created

    results = await asyncio.gather(*(enqueue() for _ in range(8)))
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(1 for _, created in results if created) == 1


async def test_a_takeover_happens_only_while_the_lease_is_lapsed(db: Database) -> None:
    """A lapsed lease seen by another process, then renewed by its live owner: the takeover
    is refused, the owner keeps its attempt; once the lease lapses for real, it is taken."""
    jobs = JobStore(db)
    (job_id,) = await _enqueue(jobs, await _worker(db), 1)
    assert await _claim(jobs) == job_id  # lease until FAR

    async def take_over(seen_at: str) -> bool:
        return await jobs.finish_attempt(
            job_id,
            1,
            now=utcnow(),
            outcome=AttemptOutcome.WORKER_LOST,
            exit_code=None,
            error=None,
            result=None,
            status=JobStatus.QUEUED,
            next_attempt_at=utcnow(),
            lost=True,
            lapsed_before=seen_at,
        )

    assert not await take_over(utcnow())
    assert await jobs.renew_leases("o", "2000-01-01T00:00:00.000000Z") == {job_id}
    assert await take_over(utcnow())
    job = await jobs.get(None, job_id)
    assert job is not None and job.status is JobStatus.QUEUED
    assert await jobs.renew_leases("o", FAR) == set()  # no longer its owner's
