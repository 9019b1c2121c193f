"""Queued jobs for the store's tests and the queue bench: one worker-settings snapshot and a
job built from it, as a trigger would store them."""

from __future__ import annotations

from typing import Any

from ava_platform.clock import utcnow
from ava_platform.ids import new_id
from ava_platform.models import Job, JobStatus, Network, RunSettings, Runtime

FAR = "9999-01-01T00:00:00.000000Z"  # a lease that never lapses in a test
RUN = RunSettings(
    runtime=Runtime.PYTHON,
    entrypoint="main.py",
    timeout_seconds=30,
    max_retries=0,
    memory_mb=256,
    cpus=1.0,
    network=Network.NONE,
)


def queued_job(tenant_id: str, worker_id: str, input: Any, **fields: Any) -> Job:
    return Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        worker_id=worker_id,
        worker_version=1,
        status=JobStatus.QUEUED,
        input=input,
        run=RUN,
        created_by="u",
        created_at=utcnow(),
        **fields,
    )
