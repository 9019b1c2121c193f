"""Job use cases: trigger (with idempotency and wait), read, list, cancel, logs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from ava_platform.ids import new_id
from ava_platform.models import (
    FINISHED,
    Job,
    JobStatus,
    LogLine,
    RunSettings,
    Trigger,
    Worker,
    WorkerStatus,
    WorkerVersion,
)
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.events import JobEvents
from ava_platform.service.sandbox import OpenSandbox, Sandbox, require_egress
from ava_platform.service.workers import WorkerService
from ava_platform.store.jobs import JobStore
from ava_platform.store.logs import LogStore

MAX_INPUT_BYTES = 1024 * 1024
MAX_WAIT_S = 60
IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class JobQuery:
    status: JobStatus | None = None
    worker_id: str | None = None
    page: int = 1
    per_page: int = 20


def snapshot(worker: Worker, version: WorkerVersion) -> RunSettings:
    """The settings a job keeps from the moment it is queued (README: decisions)."""
    return RunSettings(
        runtime=worker.runtime,
        entrypoint=version.entrypoint,
        image=version.image,
        config=dict(worker.config),
        secrets=list(worker.secrets),
        timeout_seconds=worker.timeout_seconds,
        max_retries=worker.max_retries,
        memory_mb=worker.memory_mb,
        cpus=worker.cpus,
        network=worker.network,
        isolation=worker.isolation,
    )


class JobService:
    def __init__(
        self,
        *,
        jobs: JobStore,
        logs: LogStore,
        workers: WorkerService,
        events: JobEvents,
        clock: Clock,
        sandbox: Sandbox | None = None,
    ) -> None:
        self._jobs = jobs
        self._logs = logs
        self._workers = workers
        self._events = events
        self._clock = clock
        self._sandbox = sandbox or OpenSandbox()

    async def trigger(
        self,
        who: Principal,
        worker_id: str,
        input: Any,
        *,
        idempotency_key: str | None = None,
        trigger: Trigger = Trigger.API,
        schedule_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Queues a job; returns it and whether it is new (False: an idempotent repeat)."""
        who.require(Permission.RUN)
        worker = await self._workers.get(who, worker_id)
        if worker.status is not WorkerStatus.ACTIVE:
            raise Conflict(
                f"worker is {worker.status.value}: it accepts no new jobs",
                code=f"worker_{worker.status.value}",
            )
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise BadRequest(
                "Idempotency-Key must be 1-255 printable ASCII characters", code="bad_header"
            )
        input_json = msgspec.json.encode(input)  # encoded once: these bytes are stored
        if len(input_json) > MAX_INPUT_BYTES:
            raise PayloadTooLarge(f"input exceeds {MAX_INPUT_BYTES} bytes", code="input_too_large")
        version = await self._workers.runnable_version(worker)
        require_egress(self._sandbox, worker.network)
        now = self._clock.now()
        job = Job(
            id=new_id("job"),
            tenant_id=who.tenant_id,
            worker_id=worker.id,
            worker_version=version.version,
            status=JobStatus.QUEUED,
            input=input,
            max_retries=worker.max_retries,
            trigger=trigger,
            schedule_id=schedule_id,
            run=snapshot(worker, version),
            created_by=who.user_id,
            created_at=iso(now),
        )
        stored, created = await self._jobs.enqueue(
            job, input_json, idempotency_key, iso(now - IDEMPOTENCY_WINDOW)
        )
        if created:
            self._events.enqueued()
        return stored, created

    async def wait(self, who: Principal, job_id: str, wait_s: float) -> Job:
        """The job once finished, or as it is after `wait_s` seconds."""
        job = await self.get(who, job_id)
        if job.status not in FINISHED and wait_s > 0:
            await self._events.wait_finished(job_id, wait_s)
            job = await self.get(who, job_id)
        return job

    async def get(self, who: Principal, job_id: str) -> Job:
        who.require(Permission.READ)
        job = await self._jobs.get(who.tenant_id, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        return job

    async def page(self, who: Principal, query: JobQuery) -> tuple[list[Job], int]:
        who.require(Permission.READ)
        if query.worker_id is not None:
            await self._workers.get(who, query.worker_id)
        return await self._jobs.page(
            who.tenant_id,
            status=query.status,
            worker_id=query.worker_id,
            limit=query.per_page,
            offset=(query.page - 1) * query.per_page,
        )

    async def cancel(self, who: Principal, job_id: str) -> Job:
        who.require(Permission.RUN)
        before = await self._jobs.cancel(who.tenant_id, job_id, iso(self._clock.now()))
        if before is None:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        if before in FINISHED:
            raise Conflict(f"job already {before.value}", code="job_finished")
        if before is JobStatus.QUEUED:
            self._events.finished(job_id)
        else:
            self._events.cancel_requested(job_id)
        return await self.get(who, job_id)

    async def logs(
        self, who: Principal, job_id: str, *, after_seq: int = 0, limit: int = 1000
    ) -> list[LogLine]:
        await self.get(who, job_id)
        return await self._logs.read(job_id, after_seq=after_seq, limit=limit)

    async def status(self, job_id: str) -> JobStatus | None:
        return await self._jobs.status(job_id)

    async def wait_changed(self, job_id: str, timeout_s: float) -> None:
        await self._events.wait_changed(job_id, timeout_s)
