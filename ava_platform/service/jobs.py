"""Job use cases: trigger (with idempotency and wait), read, list, cancel, logs."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from ava_platform.clock import Clock, iso, parse_iso
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
from ava_platform.store.jobs import JobFilters, JobStore
from ava_platform.store.json_rows import decode_job
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
    error_type: str | None = None
    created_after: str | None = None  # as given: checked and normalised by the service
    created_before: str | None = None


UrlCheck = Callable[[str], Awaitable[None]]


def _filter_time(name: str, raw: str | None) -> str | None:
    """An ISO 8601 time with its offset (or Z), in the stored form (so it compares as text)."""
    if raw is None:
        return None
    try:
        when = parse_iso(raw)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise BadRequest(
            f"{name} must be an ISO 8601 time with an offset, e.g. 2026-01-31T12:00:00Z",
            code="invalid_filter",
            details=[{"field": name, "message": "not an ISO 8601 time with an offset"}],
        )
    return iso(when)


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
        max_queued: int | None = None,
        check_webhook_url: UrlCheck | None = None,
    ) -> None:
        self._max_queued = max_queued  # the default queued quota; None: no limit
        self._check_url = check_webhook_url
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
        webhook_url: str | None = None,
        rerun_of: str | None = None,
        pin_version: int | None = None,
    ) -> tuple[Job, bool]:
        """Queues a job; returns it and whether it is new (False: an idempotent repeat).
        `pin_version`: run that version (still runnable) instead of the worker's current."""
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
        if webhook_url is not None and self._check_url is not None:
            await self._check_url(webhook_url)
        if pin_version is not None:
            version = await self._workers.pinned_version(worker, pin_version)
        else:
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
            webhook_url=webhook_url or worker.webhook_url,
            rerun_of=rerun_of,
        )
        stored, created = await self._jobs.enqueue(
            job,
            input_json,
            idempotency_key,
            iso(now - IDEMPOTENCY_WINDOW),
            max_queued=self._max_queued,
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
        return decode_job(await self.get_json(who, job_id))

    async def get_json(self, who: Principal, job_id: str) -> bytes:
        """The job's JSON as the store built it, for the API to send without decoding."""
        who.require(Permission.READ)
        body = await self._jobs.get_json(who.tenant_id, job_id)
        if body is None:
            raise NotFound(f"job {job_id} not found", code="job_not_found")
        return body

    async def page(self, who: Principal, query: JobQuery) -> tuple[list[Job], int]:
        body, total = await self.page_json(who, query)
        return msgspec.json.decode(body, type=list[Job]), total

    async def page_json(self, who: Principal, query: JobQuery) -> tuple[bytes, int]:
        """The page's jobs as the JSON array the store builds (a list route serves it as is)."""
        who.require(Permission.READ)
        if query.worker_id is not None:
            await self._workers.get(who, query.worker_id)
        return await self._jobs.page_json(
            who.tenant_id,
            status=query.status,
            worker_id=query.worker_id,
            limit=query.per_page,
            offset=(query.page - 1) * query.per_page,
            filters=JobFilters(
                error_type=query.error_type,
                created_after=_filter_time("filter[created_after]", query.created_after),
                created_before=_filter_time("filter[created_before]", query.created_before),
            ),
        )

    async def rerun(self, who: Principal, job_id: str, *, same_version: bool = False) -> Job:
        """A new job with a finished job's input, on the worker's current version (or, with
        `same_version`, the old job's own version while it is still runnable)."""
        who.require(Permission.RUN)
        old = await self.get(who, job_id)
        if old.status not in FINISHED:
            raise Conflict(
                f"job is {old.status.value}: only a finished job can be re-run",
                code="job_not_finished",
            )
        job, _ = await self.trigger(
            who,
            old.worker_id,
            old.input,
            webhook_url=old.webhook_url,
            rerun_of=old.id,
            pin_version=old.worker_version if same_version else None,
        )
        return job

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
