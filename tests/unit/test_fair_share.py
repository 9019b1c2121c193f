"""Fair share and quotas in the claim, on both store backends (a real SQLite file, a real
PostgreSQL server): a deep queue cannot starve another tenant, one tenant's order stays first
in, first out, and the running and queued quotas hold."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from ava_platform.clock import SystemClock, utcnow
from ava_platform.errors import QuotaExceeded
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
from ava_platform.store.quotas import QuotaStore, TenantQuota
from ava_platform.store.workers import VersionStore, WorkerStore
from tests.queued import FAR, queued_job

_BY = {"updated_at": "2026-01-01T00:00:00.000000Z", "updated_by": "op"}


@pytest.fixture
def db(store_db: Database) -> Database:
    return store_db


async def _worker(db: Database, tenant: str) -> str:
    service = WorkerService(WorkerStore(db), VersionStore(db), SystemClock())
    who = Principal(tenant, "usr", Role.ADMIN)
    worker = await service.create(
        who, WorkerCreate(name="w", runtime=Runtime.PYTHON, source_code="x")
    )
    return worker.id


async def _enqueue(
    jobs: JobStore, tenant: str, worker_id: str, n: int, max_queued: int | None = None
) -> list[str]:
    ids = []
    for i in range(n):
        job = queued_job(tenant, worker_id, {"i": i})
        await jobs.enqueue(job, msgspec.json.encode(job.input), None, "", max_queued=max_queued)
        ids.append(job.id)
    return ids


async def _claim(jobs: JobStore, max_running: int, tenant_max: int | None = None) -> str | None:
    claimed = await jobs.claim_next(
        now=utcnow(),
        owner="o",
        lease_until=FAR,
        max_running=max_running,
        tenant_max_running=tenant_max,
    )
    return claimed.job_id if claimed else None


async def _finish(jobs: JobStore, job_id: str) -> None:
    assert await jobs.finish_attempt(
        job_id,
        1,
        now=utcnow(),
        outcome=AttemptOutcome.SUCCEEDED,
        exit_code=0,
        error=None,
        result=1,
        status=JobStatus.SUCCEEDED,
        next_attempt_at=None,
    )


async def test_a_deep_queue_does_not_starve_another_tenant(db: Database) -> None:
    jobs = JobStore(db)
    a_jobs = await _enqueue(jobs, "ten_a", await _worker(db, "ten_a"), 200)
    first = await _claim(jobs, max_running=1)
    assert first == a_jobs[0]
    [b_job] = await _enqueue(jobs, "ten_b", await _worker(db, "ten_b"), 1)
    assert await _claim(jobs, max_running=1) is None  # the one slot is taken
    await _finish(jobs, first)
    # the next free slot goes to B, though 199 of A's jobs are older
    assert await _claim(jobs, max_running=1) == b_job


async def test_fewer_running_first_and_fifo_within_a_tenant(db: Database) -> None:
    jobs = JobStore(db)
    a_jobs = await _enqueue(jobs, "ten_a", await _worker(db, "ten_a"), 5)
    b_jobs = await _enqueue(jobs, "ten_b", await _worker(db, "ten_b"), 5)
    order = [await _claim(jobs, max_running=100) for _ in range(10)]
    # alternating tenants, each in its own order
    assert order[0::2] == a_jobs
    assert order[1::2] == b_jobs


async def test_the_running_quota_holds_extra_jobs_in_the_queue(db: Database) -> None:
    jobs, quotas = JobStore(db), QuotaStore(db)
    a_jobs = await _enqueue(jobs, "ten_a", await _worker(db, "ten_a"), 4)
    b_jobs = await _enqueue(jobs, "ten_b", await _worker(db, "ten_b"), 4)
    await quotas.put(TenantQuota(tenant_id="ten_b", max_running=1, max_queued=None, **_BY))
    claimed = {await _claim(jobs, max_running=100, tenant_max=2) for _ in range(8)} - {None}
    # the default holds A to 2, B's own quota holds it to 1
    assert claimed == {*a_jobs[:2], b_jobs[0]}
    assert await jobs.status(b_jobs[1]) is JobStatus.QUEUED


async def test_the_queued_quota_refuses_and_queues_nothing(db: Database) -> None:
    jobs, quotas = JobStore(db), QuotaStore(db)
    worker = await _worker(db, "ten_a")
    await _enqueue(jobs, "ten_a", worker, 3, max_queued=3)
    with pytest.raises(QuotaExceeded):
        await _enqueue(jobs, "ten_a", worker, 1, max_queued=3)
    assert [t.queued for t in await quotas.load()] == [3]
    await quotas.put(TenantQuota(tenant_id="ten_a", max_running=None, max_queued=4, **_BY))
    await _enqueue(jobs, "ten_a", worker, 1, max_queued=3)  # the override wins
    assert [t.queued for t in await quotas.load()] == [4]


async def test_the_running_quota_holds_under_concurrent_claims(db: Database) -> None:
    """Claimers side by side (separate connections on PostgreSQL) never run more of one
    tenant's jobs than its running quota, whoever the owners are."""
    jobs, quotas = JobStore(db), QuotaStore(db)
    await _enqueue(jobs, "ten_a", await _worker(db, "ten_a"), 10)
    await quotas.put(TenantQuota(tenant_id="ten_a", max_running=2, max_queued=None, **_BY))

    async def claim(owner: str) -> str | None:
        got = await jobs.claim_next(now=utcnow(), owner=owner, lease_until=FAR, max_running=10)
        return got.job_id if got else None

    claimed = await asyncio.gather(*(claim(f"o{i % 3}") for i in range(12)))
    assert sum(1 for c in claimed if c) == 2


async def _served_order(db: Database) -> list[str]:
    rows = await db.fetchall("SELECT tenant_id FROM tenant_claims ORDER BY last_claim, tenant_id")
    return [r[0] for r in rows]


async def _batch_then_replay(db: Database, owner: str, limit: int, tenant_max: int | None) -> None:
    """A batch claim takes the jobs, in the order, that as many claims one after another
    take from the same state (the state is put back in between), and leaves the tenants in
    the same served order."""
    jobs = JobStore(db)
    claims = await db.fetchall("SELECT tenant_id, last_claim FROM tenant_claims")
    batch = await jobs.claim_batch(
        now=utcnow(),
        owner=owner,
        lease_until=FAR,
        max_running=100,
        limit=limit,
        tenant_max_running=tenant_max,
    )
    batch_served = await _served_order(db)
    async with db.transaction() as conn:  # back to the state before the batch
        await conn.execute(
            "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE lease_owner = ?)",
            (owner,),
        )
        await conn.execute(
            "UPDATE jobs SET status = 'queued', attempt = attempt - 1, lease_owner = NULL, "
            "lease_expires_at = NULL, started_at = NULL WHERE lease_owner = ?",
            (owner,),
        )
        await conn.execute("DELETE FROM tenant_claims")
        for row in claims:
            await conn.execute(
                "INSERT INTO tenant_claims (tenant_id, last_claim) VALUES (?, ?)", tuple(row)
            )
    one_by_one = []
    for _ in range(limit):
        got = await jobs.claim_next(
            now=utcnow(),
            owner=owner,
            lease_until=FAR,
            max_running=100,
            tenant_max_running=tenant_max,
        )
        if got is None:
            break
        one_by_one.append(got.job_id)
    assert [c.job_id for c in batch] == one_by_one
    assert batch_served == await _served_order(db)
    assert len({c.job_id for c in batch}) == len(batch)


async def test_a_batch_claim_takes_what_claims_one_by_one_take(db: Database) -> None:
    """Tenants with different running counts, turns and ages, some never served: a batch
    interleaves them exactly as single claims do."""
    jobs = JobStore(db)
    tenants = ["ten_a", "ten_b", "ten_c", "ten_d", "ten_e"]
    workers = {t: await _worker(db, t) for t in tenants}
    for round_ in range(4):  # interleaved enqueues: heads of different ages
        for i, tenant in enumerate(tenants):
            await _enqueue(jobs, tenant, workers[tenant], 1 + (i + round_) % 3)
    history = [await _claim(jobs, max_running=100) for _ in range(7)]  # running + turns
    for job_id in history[1::3]:
        assert job_id is not None
        await _finish(jobs, job_id)
    await _enqueue(jobs, "ten_f", await _worker(db, "ten_f"), 2)  # never served
    await _batch_then_replay(db, "b1", 14, None)
    await _batch_then_replay(db, "b2", 60, None)  # more than is queued: all of it


async def test_a_batch_claim_stops_at_a_limit_and_claims_on_one_by_one(db: Database) -> None:
    """A worker's max_concurrency and tenants' running quotas: the batch takes the jobs
    before the first limited one in one go and the rest one at a time, still the same jobs in
    the same order as single claims, and no limit is passed."""
    jobs, quotas = JobStore(db), QuotaStore(db)
    await _enqueue(jobs, "ten_a", await _worker(db, "ten_a"), 4)
    solo = await WorkerService(WorkerStore(db), VersionStore(db), SystemClock()).create(
        Principal("ten_b", "usr", Role.ADMIN),
        WorkerCreate(name="solo", runtime=Runtime.PYTHON, source_code="x", max_concurrency=1),
    )
    await _enqueue(jobs, "ten_b", solo.id, 3)
    await _enqueue(jobs, "ten_c", await _worker(db, "ten_c"), 4)
    await quotas.put(TenantQuota(tenant_id="ten_c", max_running=2, max_queued=None, **_BY))
    await _batch_then_replay(db, "b1", 3, None)
    await _batch_then_replay(db, "b2", 20, 3)  # the default quota limits every tenant
    rows = await db.fetchall(
        "SELECT tenant_id, count(*) FROM jobs WHERE status = 'running' GROUP BY tenant_id "
        "ORDER BY tenant_id"
    )
    # A up to the default quota, B's one-at-a-time worker, C's own quota
    assert [tuple(r) for r in rows] == [("ten_a", 3), ("ten_b", 1), ("ten_c", 2)]
