"""The baseline of bench/api.py: a bare Litestar app that answers the same routes with the
same JSON AVA answered (read once from AVA, from the file named by $AVA_BENCH_FIXTURES), decoded
into the same Structs, so it pays routing and serialisation and nothing else: no auth, no
store, no middleware. Served by the same server stack as `ava serve`."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from litestar import Litestar, get

from ava_platform.models import Job, JobPage, Worker, WorkerPage


class Fixtures(msgspec.Struct):
    worker: Worker
    job: Job
    workers: WorkerPage
    jobs: JobPage


_DATA = msgspec.json.decode(Path(os.environ["AVA_BENCH_FIXTURES"]).read_bytes(), type=Fixtures)


@get("/v1/ava/workers/{worker_id:str}")
async def get_worker(worker_id: str) -> Worker:
    return _DATA.worker


@get("/v1/ava/jobs/{job_id:str}")
async def get_job(job_id: str) -> Job:
    return _DATA.job


@get("/v1/ava/workers")
async def list_workers() -> WorkerPage:
    return _DATA.workers


@get("/v1/ava/jobs")
async def list_jobs() -> JobPage:
    return _DATA.jobs


app = Litestar(route_handlers=[get_worker, get_job, list_workers, list_jobs], debug=False)
