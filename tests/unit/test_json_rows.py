"""Jobs and workers read back as the database builds their JSON (store/json_rows.py), on both
backends: every field, in order, exactly as written, awkward values included."""

from __future__ import annotations

import msgspec

from ava_platform.clock import SystemClock, utcnow
from ava_platform.ids import new_id
from ava_platform.models import (
    Attempt,
    AttemptOutcome,
    ErrorInfo,
    Job,
    JobStatus,
    Network,
    Role,
    RunSettings,
    Runtime,
    WorkerCreate,
)
from ava_platform.service.auth import Principal
from ava_platform.service.workers import WorkerQuery, WorkerService
from ava_platform.store.database import Database
from ava_platform.store.jobs import JobStore
from ava_platform.store.workers import VersionStore, WorkerStore

ADMIN = Principal("ten_j", "usr_a", Role.ADMIN)
FAR = "9999-01-01T00:00:00.000000Z"
# what a JSON round trip through a database could bend: big and negative numbers, floats,
# escapes, non-ASCII, separators JavaScript mishandles, nesting, empties and nulls
AWKWARD = {
    "big": 2**62,
    "neg": -5,
    "float": 1.5e300,
    "tiny": 5e-324,
    "text": 'quote " backslash \\ nul \u0000 tab \t </script> \u2028 é 漢字 🙂',
    "nested": {"list": [1, [2, [3, {}]], []], "none": None, "yes": True, "no": False},
}


async def test_a_job_with_attempts_reads_back_whole_by_id_and_in_a_page(
    store_db: Database,
) -> None:
    workers = WorkerService(WorkerStore(store_db), VersionStore(store_db), SystemClock())
    worker = await workers.create(ADMIN, WorkerCreate(name="w", runtime=Runtime.PYTHON))
    jobs = JobStore(store_db)
    run = RunSettings(
        runtime=Runtime.PYTHON,
        entrypoint="main.py",
        config={"k": "v", "n": 3},
        secrets=["API_KEY"],
        timeout_seconds=30,
        max_retries=1,
        memory_mb=256,
        cpus=0.5,
        network=Network.NONE,
    )
    queued = Job(
        id=new_id("job"),
        tenant_id=ADMIN.tenant_id,
        worker_id=worker.id,
        worker_version=1,
        status=JobStatus.QUEUED,
        input=AWKWARD,
        max_retries=1,
        run=run,
        created_by="usr_a",
        created_at=utcnow(),
        webhook_url="https://example.test/hook",
    )
    await jobs.enqueue(queued, msgspec.json.encode(queued.input), None, "")
    assert await jobs.get(ADMIN.tenant_id, queued.id) == queued  # no attempt yet: []

    fail = ErrorInfo(type="handler_error", message="boom \u2028 é")
    for number, outcome, status in [
        (1, AttemptOutcome.FAILED, JobStatus.QUEUED),
        (2, AttemptOutcome.SUCCEEDED, JobStatus.SUCCEEDED),
    ]:
        claimed = await jobs.claim_next(now=utcnow(), owner="o", lease_until=FAR, max_running=9)
        assert claimed is not None and claimed.attempt == number
        ok = outcome is AttemptOutcome.SUCCEEDED
        assert await jobs.finish_attempt(
            queued.id,
            number,
            now=utcnow(),
            outcome=outcome,
            exit_code=0 if ok else 1,
            error=None if ok else fail,
            result=AWKWARD["nested"] if ok else None,
            status=status,
            next_attempt_at=None if ok else utcnow(),
        )

    job = await jobs.get(ADMIN.tenant_id, queued.id)
    assert job is not None
    assert job.input == AWKWARD and job.run == run and job.webhook_url == queued.webhook_url
    assert (job.status, job.attempt, job.result, job.error) == (
        JobStatus.SUCCEEDED,
        2,
        AWKWARD["nested"],
        None,
    )
    assert [(a.number, a.outcome, a.exit_code, a.error) for a in job.attempts] == [
        (1, AttemptOutcome.FAILED, 1, fail),
        (2, AttemptOutcome.SUCCEEDED, 0, None),
    ]
    assert all(isinstance(a, Attempt) and a.started_at and a.finished_at for a in job.attempts)
    page, total = await jobs.page(
        ADMIN.tenant_id, status=None, worker_id=worker.id, limit=10, offset=0
    )
    assert (page, total) == ([job], 1)
    served, _ = await jobs.page_json(
        ADMIN.tenant_id, status=None, worker_id=worker.id, limit=10, offset=0
    )
    assert as_encoded(served) == msgspec.json.encode([job])
    assert await jobs.get("ten_other", queued.id) is None  # another tenant's job: not found
    # GET /jobs/{id} serves the database's JSON as is: the model's own encoding
    one = await jobs.get_json(ADMIN.tenant_id, queued.id)
    assert one is not None and as_encoded(one) == msgspec.json.encode(job)
    assert await jobs.get_json("ten_other", queued.id) is None


async def test_a_worker_reads_back_whole_by_id_and_in_a_list(store_db: Database) -> None:
    workers = WorkerService(WorkerStore(store_db), VersionStore(store_db), SystemClock())
    schema = {"type": "object", "properties": {"q": {"type": "string", "maxLength": 10}}}
    made = await workers.create(
        ADMIN,
        WorkerCreate(
            name="awkward é 漢字",
            description='quote " \u2028',
            runtime=Runtime.PYTHON,
            config={"big": 2**62, "f": 0.1, "s": "</script>", "yes": True},
            secrets=["API_KEY", "OTHER"],
            cpus=0.5,
            max_concurrency=3,
            input_schema=schema,
        ),
    )
    assert await workers.get(ADMIN, made.id) == made
    found, total = await workers.list(ADMIN, WorkerQuery())
    assert (found, total) == ([made], 1)
    plain = await workers.create(ADMIN, WorkerCreate(name="plain", runtime=Runtime.SHELL, cpus=1.0))
    assert plain.input_schema is None and plain.max_concurrency is None
    assert await workers.get(ADMIN, plain.id) == plain
    # a list is served as the database built it: the model's own JSON, a float still a float
    served, total = await workers.list_json(ADMIN, WorkerQuery())
    assert total == 2 and as_encoded(served) == msgspec.json.encode([plain, made])
    assert b'"cpus":1.0' in as_encoded(served)


def as_encoded(served: bytes) -> bytes:
    """The served JSON with its whitespace dropped (PostgreSQL spaces its objects out) but its
    key order and number spelling kept: a float served as an int would differ here."""
    return msgspec.json.encode(msgspec.json.decode(served))
