"""The synchronous client. Every method is one endpoint (see `calls`); errors are AvaApiError
subclasses, one per error code; an unreachable server is AvaConnectionError."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from ava_platform.client import calls
from ava_platform.client._base import (
    DEFAULT_TIMEOUT_S,
    STREAM_TIMEOUT,
    Identity,
    connection_error,
    result,
    url_from_env,
)
from ava_platform.client.calls import Call, Health, LogEntry
from ava_platform.client.core import Done, LogFollow, Poll, job_wait, version_wait
from ava_platform.client.sse import Event
from ava_platform.models import (
    DeliveryList,
    Job,
    JobPage,
    JobStatus,
    Quota,
    Schedule,
    ScheduleCreate,
    SchedulePage,
    ScheduleRunPage,
    SecretInfo,
    SecretPage,
    VersionInfo,
    VersionPage,
    Worker,
    WorkerCreate,
    WorkerPage,
    WorkerPatch,
)

T = TypeVar("T")


class AvaClient:
    def __init__(
        self,
        url: str,
        identity: Identity,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=identity.headers(), timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> AvaClient:
        """AVA_URL, AVA_INTERNAL_SECRET, AVA_TENANT_ID, AVA_USER_ID, AVA_ROLE."""
        return cls(url_from_env(env), Identity.from_env(env), **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AvaClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def call(self, call: Call[T], *, timeout_s: float | None = None) -> T:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                content=call.body,
                headers=call.headers,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise connection_error(self.url, exc) from exc
        return result(call, response)

    # -- workers ----------------------------------------------------------------------------

    def list_workers(self, **query: Any) -> WorkerPage:
        """Query: status, runtime, q, page, per_page."""
        return self.call(calls.list_workers(**query))

    def get_worker(self, worker_id: str) -> Worker:
        return self.call(calls.get_worker(worker_id))

    def create_worker(self, worker: WorkerCreate | dict[str, Any]) -> Worker:
        return self.call(calls.create_worker(worker))

    def update_worker(self, worker_id: str, patch: WorkerPatch | dict[str, Any]) -> Worker:
        return self.call(calls.update_worker(worker_id, patch))

    def delete_worker(self, worker_id: str) -> Worker:
        return self.call(calls.delete_worker(worker_id))

    def deploy(
        self, worker_id: str, bundle: bytes, content_type: str = "application/gzip"
    ) -> VersionInfo:
        return self.call(calls.deploy(worker_id, bundle, content_type), timeout_s=300)

    def list_versions(self, worker_id: str, *, page: int = 1, per_page: int = 20) -> VersionPage:
        return self.call(calls.list_versions(worker_id, page=page, per_page=per_page))

    def get_version(self, worker_id: str, version: int) -> VersionInfo:
        return self.call(calls.get_version(worker_id, version))

    def build_log(self, worker_id: str, version: int) -> str:
        return self.call(calls.build_log(worker_id, version))

    def rollback(self, worker_id: str, version: int) -> Worker:
        return self.call(calls.rollback(worker_id, version))

    def wait_for_version(
        self, worker_id: str, version: int, *, timeout_s: float | None = None
    ) -> VersionInfo:
        """Polls until the version's build is no longer `building`; WaitTimeout (carrying the
        version) when `timeout_s` runs out."""
        return self._wait(
            version_wait(worker_id, version, now=time.monotonic(), timeout_s=timeout_s)
        )

    # -- jobs -------------------------------------------------------------------------------

    def run_job(
        self,
        worker_id: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        wait_s: float | None = None,
    ) -> Job:
        """Queues a job (202). With `wait_s` (≤ 60) the server holds the answer until the job
        ends or the wait runs out."""
        call = calls.run_job(worker_id, input, idempotency_key=idempotency_key, wait_s=wait_s)
        return self.call(call, timeout_s=(wait_s or 0) + DEFAULT_TIMEOUT_S)

    def list_jobs(self, **query: Any) -> JobPage:
        """Query: status, worker_id, page, per_page, error_type, created_after,
        created_before."""
        return self.call(calls.list_jobs(**query))

    def list_worker_jobs(
        self,
        worker_id: str,
        *,
        status: JobStatus | str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> JobPage:
        return self.call(
            calls.list_worker_jobs(worker_id, status=status, page=page, per_page=per_page)
        )

    def get_job(self, job_id: str) -> Job:
        return self.call(calls.get_job(job_id))

    def cancel_job(self, job_id: str) -> Job:
        return self.call(calls.cancel_job(job_id))

    def rerun_job(self, job_id: str, *, same_version: bool = False) -> Job:
        """A new job with a finished job's input (`same_version`: on its old version)."""
        return self.call(calls.rerun_job(job_id, same_version=same_version))

    def job_deliveries(self, job_id: str) -> DeliveryList:
        return self.call(calls.job_deliveries(job_id))

    def get_quota(self, tenant_id: str) -> Quota:
        return self.call(calls.get_quota(tenant_id))

    def set_quota(
        self, tenant_id: str, *, max_running: int | None = None, max_queued: int | None = None
    ) -> Quota:
        """The operator's override (role tenant-system-admin); None: back to the default."""
        return self.call(calls.set_quota(tenant_id, max_running=max_running, max_queued=max_queued))

    def webhook_secret(self, *, rotate: bool = False) -> str:
        return (self.call(calls.webhook_secret(rotate=rotate))).secret

    def job_logs(self, job_id: str) -> str:
        return self.call(calls.job_logs(job_id), timeout_s=120)

    def job_log_entries(self, job_id: str) -> list[LogEntry]:
        return calls.parse_ndjson(self.call(calls.job_log_entries(job_id), timeout_s=120))

    def wait_for_job(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 0.2,
        on_pending: Callable[[Job], None] | None = None,
    ) -> Job:
        """The job once it has ended; WaitTimeout (carrying the job) when `timeout_s` runs out.
        `on_pending` sees the job each time it is found still queued or running."""
        wait = job_wait(job_id, now=time.monotonic(), timeout_s=timeout_s, poll_s=poll_s)
        return self._wait(wait, on_pending)

    def _wait(self, poll: Poll[T], on_pending: Callable[[T], None] | None = None) -> T:
        """Carries out a `core.Poll`: the call, the answer and its time, the pause it asks."""
        while True:
            value = self.call(poll.call)
            step = poll.answer(value, time.monotonic())
            if isinstance(step, Done):
                return step.value
            if on_pending is not None:
                on_pending(value)
            time.sleep(step.seconds)

    def follow_logs(self, job_id: str) -> Iterator[Event]:
        """Each log line as it is written, then one LogEnd when the job has ended. A broken
        stream is resumed where it stopped (Last-Event-ID); see `core.LogFollow`."""
        follow = LogFollow(job_id, self.url)
        while True:
            call = follow.request()
            try:
                with self._http.stream(
                    call.method,
                    call.path,
                    params=call.params,
                    headers=call.headers,
                    timeout=STREAM_TIMEOUT,
                ) as response:
                    if not response.is_success:
                        raise follow.rejected(response.status_code, response.read())
                    for chunk in response.iter_bytes():
                        yield from follow.feed(chunk)
                        if follow.done:
                            return
            except httpx.HTTPError as exc:
                pause = follow.cut(exc)
            else:
                pause = follow.cut()  # the stream closed before the job ended
            time.sleep(pause.seconds)

    # -- secrets ----------------------------------------------------------------------------

    def set_secret(self, name: str, value: str) -> SecretInfo:
        return self.call(calls.set_secret(name, value))

    def list_secrets(self, *, page: int = 1, per_page: int = 100) -> SecretPage:
        return self.call(calls.list_secrets(page=page, per_page=per_page))

    def delete_secret(self, name: str) -> None:
        self.call(calls.delete_secret(name))

    # -- schedules --------------------------------------------------------------------------

    def create_schedule(
        self, worker_id: str, schedule: ScheduleCreate | dict[str, Any]
    ) -> Schedule:
        return self.call(calls.create_schedule(worker_id, schedule))

    def list_schedules(self, worker_id: str, *, page: int = 1, per_page: int = 20) -> SchedulePage:
        return self.call(calls.list_schedules(worker_id, page=page, per_page=per_page))

    def get_schedule(self, worker_id: str, schedule_id: str) -> Schedule:
        return self.call(calls.get_schedule(worker_id, schedule_id))

    def delete_schedule(self, worker_id: str, schedule_id: str) -> None:
        self.call(calls.delete_schedule(worker_id, schedule_id))

    def schedule_runs(
        self, worker_id: str, schedule_id: str, *, page: int = 1, per_page: int = 20
    ) -> ScheduleRunPage:
        return self.call(calls.schedule_runs(worker_id, schedule_id, page=page, per_page=per_page))

    # -- health and metrics -----------------------------------------------------------------

    def healthz(self) -> Health:
        return self.call(calls.healthz())

    def readyz(self) -> Health:
        return self.call(calls.readyz())

    def metrics(self) -> str:
        return self.call(calls.metrics())
