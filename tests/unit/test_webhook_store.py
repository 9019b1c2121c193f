"""Re-runs and webhook deliveries in the store, on both backends (a real SQLite file, a real
PostgreSQL server): a job's end queues its delivery in the same transaction, the error type and
creation time filter the job list, and a tenant's signing secret is created once."""

from __future__ import annotations

import msgspec
import pytest

from ava_platform.clock import utcnow
from ava_platform.models import (
    AttemptOutcome,
    ErrorInfo,
    Job,
    JobStatus,
)
from ava_platform.store.database import Database
from ava_platform.store.jobs import JobFilters, JobStore
from ava_platform.store.secrets import SealedSecret
from ava_platform.store.webhooks import WEBHOOK_SECRET_NAME, DeliveryAttempt, WebhookStore
from tests.queued import FAR, queued_job
from tests.unit.test_fair_share import _worker

HOOK = "https://hooks.example.com/ava"


async def _enqueue(jobs: JobStore, worker_id: str, **fields: str | None) -> Job:
    job = queued_job("ten_a", worker_id, {"n": 1}, **fields)
    stored, created = await jobs.enqueue(job, msgspec.json.encode(job.input), None, "")
    assert created
    return stored


@pytest.fixture
def db(store_db: Database) -> Database:
    return store_db


async def test_a_failed_job_queues_its_delivery_and_is_found_by_its_error_type(
    db: Database,
) -> None:
    jobs, hooks = JobStore(db), WebhookStore(db)
    worker = await _worker(db, "ten_a")
    first = await _enqueue(jobs, worker)
    job = await _enqueue(jobs, worker, webhook_url=HOOK, rerun_of=first.id)
    before = utcnow()
    claimed = await jobs.claim_next(now=utcnow(), owner="o", lease_until=FAR, max_running=10)
    assert claimed is not None and claimed.job_id == first.id  # first in, first out
    claimed = await jobs.claim_next(now=utcnow(), owner="o", lease_until=FAR, max_running=10)
    assert claimed is not None and claimed.job_id == job.id
    assert await jobs.finish_attempt(
        job.id,
        1,
        now=utcnow(),
        outcome=AttemptOutcome.FAILED,
        exit_code=1,
        error=ErrorInfo("handler_error", "boom"),
        result=None,
        status=JobStatus.FAILED,
        next_attempt_at=None,
    )
    stored = await jobs.get("ten_a", job.id)
    assert stored is not None
    assert (stored.rerun_of, stored.webhook_url) == (first.id, HOOK)

    [due] = await hooks.due(FAR, 10)
    assert (due.job_id, due.url, due.status, due.attempts) == (job.id, HOOK, "pending", 0)
    found, total = await jobs.page(
        "ten_a",
        status=None,
        worker_id=None,
        limit=10,
        offset=0,
        filters=JobFilters(error_type="handler_error"),
    )
    assert ([j.id for j in found], total) == ([job.id], 1)
    later, _ = await jobs.page(
        "ten_a",
        status=None,
        worker_id=None,
        limit=10,
        offset=0,
        filters=JobFilters(created_after=before),
    )
    assert later == []  # both were created before `before`

    attempt = DeliveryAttempt(number=1, at=utcnow(), status_code=200, error=None, duration_ms=3)
    await hooks.record(due, attempt, status="delivered", next_attempt_at=None)
    assert await hooks.due(FAR, 10) == []
    [(delivery, attempts)] = await hooks.for_job("ten_a", job.id)
    assert delivery.status == "delivered" and attempts == [attempt]
    assert await hooks.for_job("ten_b", job.id) == []  # another tenant sees none


async def test_cancelling_a_queued_job_queues_its_delivery(db: Database) -> None:
    jobs, hooks = JobStore(db), WebhookStore(db)
    job = await _enqueue(jobs, await _worker(db, "ten_a"), webhook_url=HOOK)
    assert await jobs.cancel("ten_a", job.id, utcnow()) is JobStatus.QUEUED
    [due] = await hooks.due(FAR, 10)
    assert due.job_id == job.id
    found, _ = await jobs.page(
        "ten_a",
        status=None,
        worker_id=None,
        limit=10,
        offset=0,
        filters=JobFilters(error_type="cancelled"),
    )
    assert [j.id for j in found] == [job.id]


async def test_the_signing_secret_is_created_once_and_rotated_on_purpose(db: Database) -> None:
    hooks = WebhookStore(db)

    def sealed(byte: bytes) -> SealedSecret:
        return SealedSecret(
            tenant_id="ten_a",
            name=WEBHOOK_SECRET_NAME,
            ciphertext=byte * 32,
            nonce=byte * 12,
            key_version="k1",
        )

    assert await hooks.secret("ten_a") is None
    assert await hooks.put_secret(sealed(b"\x01"), utcnow(), replace=False)
    assert not await hooks.put_secret(sealed(b"\x02"), utcnow(), replace=False)  # first wins
    assert await hooks.secret("ten_a") == sealed(b"\x01")
    assert await hooks.put_secret(sealed(b"\x03"), utcnow(), replace=True)
    assert await hooks.secret("ten_a") == sealed(b"\x03")
