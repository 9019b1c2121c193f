# ruff: noqa: E402  (the path is fixed before anything imports `queue`)
"""Queue throughput and claim latency of the store, no containers: each "scheduler process"
is a real OS process with its own connections, claiming as the scheduler does (one batch claim
for the slots free) and finishing each job on its own (the fake executor's answer, instantly)
until the queue is empty.

(a) throughput: 10,000 queued jobs drained by 1, 2 and 4 processes, jobs/s, on SQLite (one
    process: the embedded store has one scheduler by contract) and on PostgreSQL;
(b) claim latency with 10^6 finished jobs in the table ÷ with 10^3, on both backends (the
    claim must not slow down as history grows).

PostgreSQL runs in a container built from images/postgres (tests/postgres.py), on loopback.
Run: .venv/bin/python bench/queue_throughput.py  (or `make bench`); `... queue.py latency`: (b) only
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file's folder first on the path would make it the standard library's `queue`
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import asyncio
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any

import msgspec

from ava_platform.clock import SystemClock, utcnow
from ava_platform.models import (
    AttemptOutcome,
    Job,
    JobStatus,
    Role,
    Runtime,
    WorkerCreate,
)
from ava_platform.service.auth import Principal
from ava_platform.service.workers import WorkerService
from ava_platform.store.database import Database
from ava_platform.store.db import Database as SqliteDatabase
from ava_platform.store.jobs import Claimed, JobStore
from ava_platform.store.postgres.db import PostgresDatabase
from ava_platform.store.workers import VersionStore, WorkerStore
from tests.queued import FAR, RUN, queued_job

# drained per measurement; 2,000 drained in about a second, too short a run to be steady
JOBS = int(os.environ.get("AVA_BENCH_QUEUE_JOBS", "10000"))
LOOPS_PER_PROCESS = 8  # slots of one process (its AVA_MAX_CONCURRENT_JOBS)
WHO = Principal("ten_bench", "usr_bench", Role.ADMIN)


def open_db(where: str) -> Database:
    if where.startswith("postgresql://"):
        return PostgresDatabase(where, pool_size=LOOPS_PER_PROCESS + 2)
    return SqliteDatabase(Path(where))


async def seed(where: str, queued: int) -> str:
    db = open_db(where)
    await db.open()
    try:
        worker = await WorkerService(WorkerStore(db), VersionStore(db), SystemClock()).create(
            WHO, WorkerCreate(name="bench", runtime=Runtime.PYTHON, source_code="x")
        )
        jobs = JobStore(db)
        for i in range(queued):
            job = _job(worker.id, i)
            await jobs.enqueue(job, msgspec.json.encode(job.input), None, "")
        return worker.id
    finally:
        await db.close()


def _job(worker_id: str, i: int) -> Job:
    return queued_job(WHO.tenant_id, worker_id, {"i": i})


async def _finish(jobs: JobStore, job_id: str, attempt: int) -> bool:
    return await jobs.finish_attempt(
        job_id,
        attempt,
        now=utcnow(),
        outcome=AttemptOutcome.SUCCEEDED,
        exit_code=0,
        error=None,
        result={"ok": True},
        status=JobStatus.SUCCEEDED,
        next_attempt_at=None,
    )


async def drain(where: str, owner: str, barrier: Any) -> tuple[int, float]:
    """The scheduler's shape (Scheduler._claim_loop): while slots are free, one claim_batch
    takes up to as many jobs as are free; each claimed job is then run, here answered at once,
    and finished by its own statement, as a real attempt is. Returns the finishes the store
    accepted, so every job claimed is counted once, and the process's CPU seconds meanwhile
    (on a shared machine, CPU per job moves less than jobs per second)."""
    db = open_db(where)
    await db.open()
    barrier.wait()  # every process connected and ready: the clock starts
    cpu0 = time.process_time()
    jobs = JobStore(db)
    done = 0
    running: set[asyncio.Task[None]] = set()
    freed = asyncio.Event()

    async def run(claimed: Claimed) -> None:
        nonlocal done
        if await _finish(jobs, claimed.job_id, claimed.attempt):
            done += 1

    def ended(task: asyncio.Task[None]) -> None:
        running.discard(task)
        freed.set()

    try:
        while True:
            freed.clear()
            free = LOOPS_PER_PROCESS - len(running)
            batch = []
            if free > 0:
                batch = await jobs.claim_batch(
                    now=utcnow(),
                    owner=owner,
                    lease_until=FAR,
                    max_running=LOOPS_PER_PROCESS,
                    limit=free,
                )
            for claimed in batch:
                task = asyncio.create_task(run(claimed))
                running.add(task)
                task.add_done_callback(ended)
            if not batch and not running:
                # nothing left to claim and nothing of ours running
                return done, time.process_time() - cpu0
            if len(batch) < free or free == 0:
                await freed.wait()  # full, or nothing more claimable now: until one ends
    finally:
        await asyncio.gather(*running)
        await db.close()


def _drain_process(where: str, owner: str, barrier: Any, results: Any) -> None:
    results.put(asyncio.run(drain(where, owner, barrier)))


def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def throughput(where: str, processes: int) -> tuple[float, float, float]:
    """(jobs/s, the drain processes' CPU ms per job, the machine's busy share meanwhile: near
    1.0, the store and its clients already use every core, and more processes cannot add
    any)."""
    asyncio.run(seed(where, JOBS))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_drain_process, args=(where, f"p{i}", barrier, results))
        for i in range(processes)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    t0, (busy0, total0) = time.perf_counter(), cpu_times()
    answers = [results.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    busy1, total1 = cpu_times()
    for proc in procs:
        proc.join(timeout=30)
    counts = [done for done, _ in answers]
    assert sum(counts) == JOBS, counts
    busy = (busy1 - busy0) / max(1, total1 - total0)
    return JOBS / elapsed, sum(cpu for _, cpu in answers) / JOBS * 1000, busy


async def claim_latency(where: str, finished: int) -> float:
    """Median seconds of one claim (+ its finish) with `finished` finished jobs stored."""
    worker_id = await seed(where, 0)
    db = open_db(where)
    await db.open()
    try:
        await _bulk_finished(db, worker_id, finished)
        jobs = JobStore(db)
        for i in range(200):
            job = _job(worker_id, i)
            await jobs.enqueue(job, msgspec.json.encode(job.input), None, "")
        samples = []
        for _ in range(200):
            t0 = time.perf_counter()
            # the scheduler's claim, one slot free
            claimed = await jobs.claim_batch(
                now=utcnow(), owner="o", lease_until=FAR, max_running=1, limit=1
            )
            samples.append(time.perf_counter() - t0)
            assert len(claimed) == 1
            await _finish(jobs, claimed[0].job_id, claimed[0].attempt)
        return statistics.median(samples)
    finally:
        await db.close()


async def _bulk_finished(db: Database, worker_id: str, n: int) -> None:
    """n succeeded jobs in generated rows (a few statements, not n round trips)."""
    run = msgspec.json.encode(RUN).decode()
    cols = (
        "id, tenant_id, worker_id, worker_version, status, input, result, attempt, max_retries, "
        "trigger, run, created_by, created_at, started_at, finished_at"
    )
    vals = (
        "'job_old' || {i}, 'ten_bench', '{w}', 1, 'succeeded', '{{}}', '1', 1, 0, 'api', "
        "'{run}', 'u', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', "
        "'2026-01-01T00:00:01.000000Z'"
    )
    if db.dialect.name == "postgres":
        chunk = 100_000  # each statement well inside the driver's command timeout
        for start in range(1, n + 1, chunk):
            async with db.transaction() as conn:
                await conn.execute(
                    f"INSERT INTO jobs ({cols}) SELECT "
                    + vals.format(i="g", w=worker_id, run=run)
                    + f" FROM generate_series({start}, {min(n, start + chunk - 1)}) g"
                )
        async with db.transaction() as conn:
            await conn.execute("ANALYZE jobs")
        return
    sql = (
        f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) "
        f"INSERT INTO jobs ({cols}) SELECT " + vals.format(i="x", w=worker_id, run=run) + " FROM c"
    )
    async with db.transaction(bulk=True) as conn:
        await conn.execute(sql)
    # a platform's history was checkpointed as it was written (every 200 commits); a WAL of
    # 10^6 fresh rows would instead be copied back during the measured claims, and time
    # the disk, not the claim
    assert isinstance(db, SqliteDatabase)
    await db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def main() -> None:
    from tests.postgres import postgres_server

    only_latency = sys.argv[1:] == ["latency"]
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as pg:
        if not only_latency:
            _throughputs(tmp, pg)
        _latencies(tmp, pg)


def _throughputs(tmp: str, pg: Any) -> None:
    print(f"(a) queue throughput, {JOBS} jobs, {LOOPS_PER_PROCESS} slots a process, batch claims")
    cores = os.cpu_count() or 1
    rate, cpu, busy = throughput(str(Path(tmp) / "q1.db"), 1)
    print(
        f"  sqlite     1 process : {rate:8.0f} jobs/s  (client CPU {cpu:.2f} ms/job; "
        f"machine {busy:.0%} busy of {cores} cores)"
    )
    pg_rates = []
    for n in (1, 2, 4):
        rate, cpu, busy = throughput(pg.new_database(), n)
        pg_rates.append(rate)
        name = f"{n} process{'es' if n > 1 else '  '}"
        print(
            f"  postgres   {name}: {rate:8.0f} jobs/s  (client CPU {cpu:.2f} ms/job; "
            f"machine {busy:.0%} busy of {cores} cores)"
        )
    print(
        f"  postgres 2/1 = {pg_rates[1] / pg_rates[0]:.2f}, 4/2 = {pg_rates[2] / pg_rates[1]:.2f}"
        " (target: >= 1,000 jobs/s, never slower with more processes)"
    )


def _latencies(tmp: str, pg: Any) -> None:
    print("(b) claim latency, median of 200, 10^6 finished jobs / 10^3")
    for name, small, big in (
        ("sqlite", str(Path(tmp) / "s3.db"), str(Path(tmp) / "s6.db")),
        ("postgres", pg.new_database(), pg.new_database()),
    ):
        few = asyncio.run(claim_latency(small, 1_000))
        many = asyncio.run(claim_latency(big, 1_000_000))
        print(
            f"  {name:<9} 10^3: {few * 1000:6.2f} ms  10^6: {many * 1000:6.2f} ms  "
            f"ratio {many / few:.2f} (target <= 1.5)"
        )


if __name__ == "__main__":
    main()
