"""Every endpoint as a `Call`: method, path, query, body and the Struct its answer decodes to.

The sync and async clients only execute calls; what each endpoint means lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from ava_platform.models import (
    DeliveryList,
    Job,
    JobCreate,
    JobPage,
    JobStatus,
    Quota,
    QuotaPut,
    RollbackRequest,
    Schedule,
    ScheduleCreate,
    SchedulePage,
    ScheduleRunPage,
    SecretInfo,
    SecretPage,
    SecretPut,
    VersionInfo,
    VersionPage,
    WebhookSecret,
    Worker,
    WorkerCreate,
    WorkerPage,
    WorkerPatch,
)

T = TypeVar("T")
API = "/v1/ava"
NDJSON = "application/x-ndjson"


class LogEntry(msgspec.Struct, frozen=True):
    """One log line of a job, as the logs endpoint streams it."""

    ts: str
    stream: str
    attempt: int
    line: str


class LogEnd(msgspec.Struct, frozen=True):
    """The last event of a followed log: the job's final status."""

    status: str | None = None


class Health(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, bool] = msgspec.field(default_factory=dict)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    decode_as: Any  # a Struct type, `str` for text, `None` for no body
    params: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ok_statuses: tuple[int, ...] = ()  # non-2xx statuses that still carry a normal body

    def decode(self, content: bytes) -> T:
        if self.decode_as is None:
            return None  # type: ignore[return-value]
        if self.decode_as is str:
            return content.decode("utf-8", "replace")  # type: ignore[return-value]
        return msgspec.json.decode(content, type=self.decode_as)  # type: ignore[no-any-return]


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _json(value: Any) -> tuple[bytes, dict[str, str]]:
    return msgspec.json.encode(value), {"content-type": "application/json"}


def _params(**values: Any) -> dict[str, Any]:
    return {
        k: str(v) if not isinstance(v, bool) else str(v).lower()
        for k, v in values.items()
        if v is not None
    }


def _struct(value: Any, cls: type[Any]) -> Any:
    """A request Struct, or a plain dict sent as is: the server validates either (422)."""
    if not isinstance(value, cls | dict):
        raise TypeError(f"expected {cls.__name__} or dict, got {type(value).__name__}")
    return value


# -- workers ------------------------------------------------------------------------------------


def list_workers(
    *,
    status: str | None = None,
    runtime: str | None = None,
    q: str | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Call[WorkerPage]:
    params = _params(q=q, page=page, per_page=per_page)
    params.update(_params(**{"filter[status]": status, "filter[runtime]": runtime}))
    return Call("GET", f"{API}/workers", WorkerPage, params)


def get_worker(worker_id: str) -> Call[Worker]:
    return Call("GET", f"{API}/workers/{_seg(worker_id)}", Worker)


def create_worker(worker: WorkerCreate | dict[str, Any]) -> Call[Worker]:
    body, headers = _json(_struct(worker, WorkerCreate))
    return Call("POST", f"{API}/workers", Worker, body=body, headers=headers)


def update_worker(worker_id: str, patch: WorkerPatch | dict[str, Any]) -> Call[Worker]:
    body, headers = _json(_struct(patch, WorkerPatch))
    return Call("PATCH", f"{API}/workers/{_seg(worker_id)}", Worker, body=body, headers=headers)


def delete_worker(worker_id: str) -> Call[Worker]:
    return Call("DELETE", f"{API}/workers/{_seg(worker_id)}", Worker)


# -- deploy and versions ------------------------------------------------------------------------


def deploy(
    worker_id: str, bundle: bytes, content_type: str = "application/gzip"
) -> Call[VersionInfo]:
    path = f"{API}/workers/{_seg(worker_id)}/deploy"
    return Call("POST", path, VersionInfo, body=bundle, headers={"content-type": content_type})


def list_versions(worker_id: str, *, page: int = 1, per_page: int = 20) -> Call[VersionPage]:
    params = _params(page=page, per_page=per_page)
    return Call("GET", f"{API}/workers/{_seg(worker_id)}/versions", VersionPage, params)


def get_version(worker_id: str, version: int) -> Call[VersionInfo]:
    return Call("GET", f"{API}/workers/{_seg(worker_id)}/versions/{_seg(version)}", VersionInfo)


def build_log(worker_id: str, version: int) -> Call[str]:
    path = f"{API}/workers/{_seg(worker_id)}/versions/{_seg(version)}/build-log"
    return Call("GET", path, str)


def rollback(worker_id: str, version: int) -> Call[Worker]:
    body, headers = _json(RollbackRequest(version=version))
    path = f"{API}/workers/{_seg(worker_id)}/rollback"
    return Call("POST", path, Worker, body=body, headers=headers)


# -- jobs ---------------------------------------------------------------------------------------


def run_job(
    worker_id: str,
    input: Any = None,
    *,
    idempotency_key: str | None = None,
    wait_s: float | None = None,
) -> Call[Job]:
    body, headers = _json(JobCreate(input={} if input is None else input))
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    path = f"{API}/workers/{_seg(worker_id)}/jobs"
    return Call("POST", path, Job, _params(wait=wait_s), body=body, headers=headers)


def list_jobs(
    *,
    status: JobStatus | str | None = None,
    worker_id: str | None = None,
    page: int = 1,
    per_page: int = 20,
    error_type: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> Call[JobPage]:
    params = _params(page=page, per_page=per_page)
    params.update(_params(**{"filter[status]": status, "filter[worker_id]": worker_id}))
    params.update(
        _params(
            **{
                "filter[error_type]": error_type,
                "filter[created_after]": created_after,
                "filter[created_before]": created_before,
            }
        )
    )
    return Call("GET", f"{API}/jobs", JobPage, params)


def list_worker_jobs(
    worker_id: str, *, status: JobStatus | str | None = None, page: int = 1, per_page: int = 20
) -> Call[JobPage]:
    params = _params(page=page, per_page=per_page, **{"filter[status]": status})
    return Call("GET", f"{API}/workers/{_seg(worker_id)}/jobs", JobPage, params)


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"{API}/jobs/{_seg(job_id)}", Job)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", f"{API}/jobs/{_seg(job_id)}/cancel", Job)


def rerun_job(job_id: str, *, same_version: bool = False) -> Call[Job]:
    params = _params(same_version=True) if same_version else {}
    return Call("POST", f"{API}/jobs/{_seg(job_id)}/rerun", Job, params)


def job_deliveries(job_id: str) -> Call[DeliveryList]:
    return Call("GET", f"{API}/jobs/{_seg(job_id)}/deliveries", DeliveryList)


def get_quota(tenant_id: str) -> Call[Quota]:
    return Call("GET", f"{API}/tenants/{_seg(tenant_id)}/quota", Quota)


def set_quota(tenant_id: str, *, max_running: int | None, max_queued: int | None) -> Call[Quota]:
    body, headers = _json(QuotaPut(max_running=max_running, max_queued=max_queued))
    return Call("PUT", f"{API}/tenants/{_seg(tenant_id)}/quota", Quota, body=body, headers=headers)


def webhook_secret(*, rotate: bool = False) -> Call[WebhookSecret]:
    if rotate:
        return Call("POST", f"{API}/webhook-secret/rotate", WebhookSecret)
    return Call("GET", f"{API}/webhook-secret", WebhookSecret)


def job_logs(job_id: str) -> Call[str]:
    return Call("GET", f"{API}/jobs/{_seg(job_id)}/logs", str)


def job_log_entries(job_id: str) -> Call[str]:
    """NDJSON text; `parse_ndjson` turns it into LogEntry values."""
    return Call("GET", f"{API}/jobs/{_seg(job_id)}/logs", str, headers={"accept": NDJSON})


def follow_logs(job_id: str, last_event_id: int = 0) -> Call[None]:
    headers = {"accept": "text/event-stream"}
    if last_event_id:
        headers["last-event-id"] = str(last_event_id)
    path = f"{API}/jobs/{_seg(job_id)}/logs"
    return Call("GET", path, None, {"follow": "true"}, headers=headers)


def parse_ndjson(text: str) -> list[LogEntry]:
    return [msgspec.json.decode(line, type=LogEntry) for line in text.splitlines() if line]


# -- secrets ------------------------------------------------------------------------------------


def set_secret(name: str, value: str) -> Call[SecretInfo]:
    body, headers = _json(SecretPut(value=value))
    return Call("PUT", f"{API}/secrets/{_seg(name)}", SecretInfo, body=body, headers=headers)


def list_secrets(*, page: int = 1, per_page: int = 100) -> Call[SecretPage]:
    return Call("GET", f"{API}/secrets", SecretPage, _params(page=page, per_page=per_page))


def delete_secret(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/secrets/{_seg(name)}", None)


# -- schedules ----------------------------------------------------------------------------------


def create_schedule(worker_id: str, schedule: ScheduleCreate | dict[str, Any]) -> Call[Schedule]:
    body, headers = _json(_struct(schedule, ScheduleCreate))
    path = f"{API}/workers/{_seg(worker_id)}/schedules"
    return Call("POST", path, Schedule, body=body, headers=headers)


def list_schedules(worker_id: str, *, page: int = 1, per_page: int = 20) -> Call[SchedulePage]:
    params = _params(page=page, per_page=per_page)
    return Call("GET", f"{API}/workers/{_seg(worker_id)}/schedules", SchedulePage, params)


def get_schedule(worker_id: str, schedule_id: str) -> Call[Schedule]:
    path = f"{API}/workers/{_seg(worker_id)}/schedules/{_seg(schedule_id)}"
    return Call("GET", path, Schedule)


def delete_schedule(worker_id: str, schedule_id: str) -> Call[None]:
    path = f"{API}/workers/{_seg(worker_id)}/schedules/{_seg(schedule_id)}"
    return Call("DELETE", path, None)


def schedule_runs(
    worker_id: str, schedule_id: str, *, page: int = 1, per_page: int = 20
) -> Call[ScheduleRunPage]:
    path = f"{API}/workers/{_seg(worker_id)}/schedules/{_seg(schedule_id)}/runs"
    return Call("GET", path, ScheduleRunPage, _params(page=page, per_page=per_page))


# -- health and metrics (no auth) ---------------------------------------------------------------


def healthz() -> Call[Health]:
    return Call("GET", "/healthz", Health)


def readyz() -> Call[Health]:
    return Call("GET", "/readyz", Health, ok_statuses=(503,))


def metrics() -> Call[str]:
    return Call("GET", "/metrics", str)
