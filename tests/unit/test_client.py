"""The Python client: one exception class per error code (scripted answers, then the real
server), both clients against a real server with a scripted executor, the SSE parser. The
loops the clients share are tested on their own in test_client_core.py."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Iterator

import httpx
import pytest

from ava_platform.client import (
    AsyncAvaClient,
    AvaClient,
    AvaConnectionError,
    Identity,
    LogEnd,
    LogEntry,
    WaitTimeout,
)
from ava_platform.client import errors as e
from ava_platform.client.calls import Call
from ava_platform.client.sse import SseParser
from ava_platform.models import Job, JobStatus, Runtime, Worker, runtime_image
from tests.scripted import scripted_server
from tests.support import SECRET, free_port, headers

INLINE = "def handler(input, env):\n    return input\n"


def identity(role: str = "tenant-admin", secret: str = SECRET) -> Identity:
    h = headers(role=role)
    return Identity(secret, h["x-tenant-id"], h["x-user-id"], role)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_server(tmp_path_factory.mktemp("client") / "ava.db") as base:
        yield base


@pytest.fixture
def ava(url: str) -> Iterator[AvaClient]:
    with AvaClient(url, identity()) as client:
        yield client


def tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def make_worker(ava: AvaClient, **fields: object) -> Worker:
    body = {"name": "client-test", "runtime": "python", "source_code": INLINE, **fields}
    return ava.create_worker(body)


# -- every error code, from scripted answers ----------------------------------------------------

CODES = [
    (400, "bad_request", e.BadRequestError),
    (400, "bad_header", e.BadHeaderError),
    (400, "invalid_filter", e.InvalidFilterError),
    (400, "malformed_json", e.MalformedJsonError),
    (400, "invalid_bundle", e.InvalidBundleError),
    (401, "unauthorized", e.UnauthorizedError),
    (403, "forbidden", e.ForbiddenError),
    (404, "not_found", e.NotFoundError),
    (404, "worker_not_found", e.WorkerNotFoundError),
    (404, "job_not_found", e.JobNotFoundError),
    (404, "schedule_not_found", e.ScheduleNotFoundError),
    (404, "secret_not_found", e.SecretNotFoundError),
    (404, "version_not_found", e.VersionNotFoundError),
    (405, "method_not_allowed", e.MethodNotAllowedError),
    (409, "conflict", e.ConflictError),
    (409, "worker_paused", e.WorkerPausedError),
    (409, "worker_deprecated", e.WorkerDeprecatedError),
    (409, "worker_has_no_source", e.WorkerHasNoSourceError),
    (409, "job_finished", e.JobFinishedError),
    (409, "version_not_ready", e.VersionNotReadyError),
    (409, "too_many_schedules", e.TooManySchedulesError),
    (413, "payload_too_large", e.PayloadTooLargeError),
    (413, "input_too_large", e.InputTooLargeError),
    (413, "bundle_too_large", e.BundleTooLargeError),
    (415, "unsupported_media_type", e.UnsupportedMediaTypeError),
    (422, "validation_error", e.ValidationError),
    (429, "too_many_requests", e.TooManyRequestsError),
    (500, "internal_error", e.ServerError),
    (503, "executor_error", e.ExecutorUnavailableError),
    (503, "image_missing", e.ImageMissingError),
    (503, "build_failed", e.BuildFailedError),
]


def scripted(status: int, body: bytes) -> AvaClient:
    transport = httpx.MockTransport(lambda _req: httpx.Response(status, content=body))
    return AvaClient("http://ava.test", identity(), transport=transport)


def test_every_known_code_has_a_class() -> None:
    assert {code for _, code, _ in CODES} == set(e.ERRORS_BY_CODE)


@pytest.mark.parametrize(("status", "code", "cls"), CODES)
def test_each_error_code_raises_its_class(status: int, code: str, cls: type[e.AvaApiError]) -> None:
    details = [{"field": "name", "message": "too long"}]
    body = json.dumps({"error": {"code": code, "message": "it went wrong", "details": details}})
    with pytest.raises(cls) as info:
        scripted(status, body.encode()).get_job("job_x")
    assert type(info.value) is cls
    assert isinstance(info.value, e.AvaApiError)
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.message == "it went wrong"
    assert info.value.details == details


def test_an_unknown_code_falls_back_to_its_status_class() -> None:
    body = b'{"error": {"code": "brand_new_conflict", "message": "m"}}'
    with pytest.raises(e.ConflictError) as info:
        scripted(409, body).get_job("job_x")
    assert info.value.code == "brand_new_conflict"


def test_a_non_json_error_body_still_raises_by_status() -> None:
    with pytest.raises(e.ServerError) as info:
        scripted(502, b"<html>bad gateway</html>").get_job("job_x")
    assert info.value.status == 502
    assert "bad gateway" in info.value.message


def test_an_unreachable_server_is_a_connection_error() -> None:
    with (
        AvaClient(f"http://127.0.0.1:{free_port()}", identity()) as client,
        pytest.raises(AvaConnectionError, match="cannot reach"),
    ):
        client.healthz()


# -- the same codes from the real server --------------------------------------------------------


def test_real_auth_and_request_errors(url: str, ava: AvaClient) -> None:
    with (
        AvaClient(url, identity(secret="wrong-secret-wrong-secret")) as bad,
        pytest.raises(e.UnauthorizedError),
    ):
        bad.list_workers()
    with AvaClient(url, identity(role="tenant-viewer")) as viewer, pytest.raises(e.ForbiddenError):
        viewer.create_worker({"name": "x", "runtime": "python"})
    with (
        AvaClient(url, Identity(SECRET, "bad tenant!", "usr", "tenant-admin")) as odd,
        pytest.raises(e.BadHeaderError),
    ):
        odd.list_workers()
    with pytest.raises(e.InvalidFilterError):
        ava.call(Call("GET", "/v1/ava/workers", None, {"filter[colour]": "red"}))
    json_body = {"content-type": "application/json"}
    with pytest.raises(e.MalformedJsonError):
        ava.call(Call("POST", "/v1/ava/workers", Worker, body=b"{", headers=json_body))
    with pytest.raises(e.UnsupportedMediaTypeError):
        ava.call(
            Call(
                "POST", "/v1/ava/workers", Worker, body=b"x", headers={"content-type": "text/plain"}
            )
        )
    with pytest.raises(e.ValidationError) as info:
        ava.create_worker({"name": "x", "runtime": "python", "timeout_seconds": 99999})
    assert info.value.status == 422 and info.value.details
    with pytest.raises(e.MethodNotAllowedError):
        ava.call(Call("PUT", "/v1/ava/jobs", None))


def test_real_not_found_errors(ava: AvaClient) -> None:
    worker = make_worker(ava)
    with pytest.raises(e.WorkerNotFoundError):
        ava.get_worker("wkr_missing")
    with pytest.raises(e.JobNotFoundError):
        ava.get_job("job_missing")
    with pytest.raises(e.ScheduleNotFoundError):
        ava.get_schedule(worker.id, "sch_missing")
    with pytest.raises(e.SecretNotFoundError):
        ava.delete_secret("NOT_SET")
    with pytest.raises(e.VersionNotFoundError):
        ava.get_version(worker.id, 99)


def test_real_conflicts_and_limits(ava: AvaClient) -> None:
    paused = make_worker(ava)
    ava.update_worker(paused.id, {"status": "paused"})
    with pytest.raises(e.WorkerPausedError):
        ava.run_job(paused.id, {})
    gone = make_worker(ava)
    ava.delete_worker(gone.id)
    with pytest.raises(e.WorkerDeprecatedError):
        ava.run_job(gone.id, {})
    sourceless = ava.create_worker({"name": "no-source", "runtime": "python"})
    with pytest.raises(e.WorkerHasNoSourceError):
        ava.run_job(sourceless.id, {})
    worker = make_worker(ava)
    with pytest.raises(e.InputTooLargeError):
        ava.run_job(worker.id, {"blob": "x" * (1024 * 1024 + 10)})
    done = ava.wait_for_job(ava.run_job(worker.id, {"n": 1}).id, timeout_s=10)
    with pytest.raises(e.JobFinishedError):
        ava.cancel_job(done.id)


# -- both clients against the real server -------------------------------------------------------


def test_sync_client_runs_a_job_and_reads_its_logs(ava: AvaClient) -> None:
    worker = make_worker(ava)
    job = ava.run_job(worker.id, {"n": 1}, idempotency_key="key-1")
    assert isinstance(job, Job) and job.status is JobStatus.QUEUED
    assert ava.run_job(worker.id, {"n": 2}, idempotency_key="key-1").id == job.id
    events = list(ava.follow_logs(job.id))
    assert [ev.line for ev in events if isinstance(ev, LogEntry)] == ["hello", "world"]
    assert events[-1] == LogEnd(status="succeeded")
    done = ava.get_job(job.id)
    assert done.result == {"n": 1} and done.attempts[0].outcome == "succeeded"
    assert ava.job_logs(job.id) == "hello\nworld\n"
    assert [x.line for x in ava.job_log_entries(job.id)] == ["hello", "world"]
    page = ava.list_jobs(worker_id=worker.id, status="succeeded")
    assert [j.id for j in page.data] == [job.id] and page.meta.total == 1
    assert ava.list_worker_jobs(worker.id).meta.total == 1
    failed = ava.run_job(worker.id, {"fail": True}, wait_s=10)
    assert failed.status is JobStatus.FAILED and failed.error is not None


def test_sync_client_covers_workers_secrets_schedules_versions(ava: AvaClient) -> None:
    worker = make_worker(ava, config={"A": "1"})
    assert ava.get_worker(worker.id) == worker
    assert ava.update_worker(worker.id, {"config": {"B": "2"}}).config == {"A": "1", "B": "2"}
    assert any(w.id == worker.id for w in ava.list_workers(q="client-test", per_page=100).data)
    info = ava.set_secret("API_TOKEN", "s3cret-value")
    assert info.name == "API_TOKEN"
    assert [s.name for s in ava.list_secrets().data] == ["API_TOKEN"]
    ava.delete_secret("API_TOKEN")
    schedule = ava.create_schedule(worker.id, {"cron": "*/5 * * * *", "input": {"x": 1}})
    assert ava.get_schedule(worker.id, schedule.id).cron == "*/5 * * * *"
    assert [s.id for s in ava.list_schedules(worker.id).data] == [schedule.id]
    assert ava.schedule_runs(worker.id, schedule.id).meta.total == 0
    ava.delete_schedule(worker.id, schedule.id)
    ava.update_worker(worker.id, {"source_code": INLINE + "# v2\n"})
    built = ava.deploy(worker.id, tar_gz({"main.py": INLINE}))
    assert built.version == 3
    ready = ava.wait_for_version(worker.id, 3, timeout_s=10)
    assert ready.status.value == "ready" and ready.image == f"ava/worker-{worker.id.lower()}:3"
    # the platform's own lines around the (fake) builder's one, for this bundle and image
    assert ava.build_log(worker.id, 3).splitlines() == [
        f"[ava] building {ready.image} from {runtime_image(Runtime.PYTHON)}",
        f"[ava] bundle {ready.source_digest}: 1 files, {len(INLINE.encode())} bytes",
        f"Step 1/1 : FROM fake for {ready.image}",
        f"[ava] built {ready.image}",
    ]
    versions = ava.list_versions(worker.id)
    assert [(v.version, v.current) for v in versions.data] == [(3, True), (2, False), (1, False)]
    assert ava.get_version(worker.id, 1).status.value == "ready"
    rolled = ava.rollback(worker.id, 1)
    assert (rolled.version, rolled.source_code) == (1, INLINE)  # version 1's code, not v2's
    assert ava.get_worker(worker.id).version == 1
    assert [v.version for v in ava.list_versions(worker.id).data if v.current] == [1]
    ran = ava.run_job(worker.id, {"after": "rollback"}, wait_s=10)
    assert (ran.worker_version, ran.status, ran.result) == (
        1,
        JobStatus.SUCCEEDED,
        {"after": "rollback"},
    )
    with pytest.raises(e.InvalidBundleError):
        ava.deploy(worker.id, b"not a tarball")
    assert ava.healthz().status == "ok"
    assert ava.readyz().checks["store"] is True
    assert "ava_http_request_duration_seconds" in ava.metrics()


def test_wait_for_job_times_out_with_the_job(url: str, ava: AvaClient) -> None:
    worker = make_worker(ava)
    job = ava.run_job(worker.id, {})
    with pytest.raises(WaitTimeout) as info:
        ava.wait_for_job(job.id, timeout_s=0.01)
    assert info.value.job.id == job.id
    ava.wait_for_job(job.id, timeout_s=10)


async def test_async_client_runs_and_follows(url: str) -> None:
    async with AsyncAvaClient(url, identity()) as ava:
        worker = await ava.create_worker(
            {"name": "async", "runtime": "python", "source_code": INLINE}
        )
        job = await ava.run_job(worker.id, {"k": "v"})
        lines = [ev.line async for ev in ava.follow_logs(job.id) if isinstance(ev, LogEntry)]
        assert lines == ["hello", "world"]
        done = await ava.wait_for_job(job.id, timeout_s=10)
        assert done.status is JobStatus.SUCCEEDED and done.result == {"k": "v"}
        with pytest.raises(e.JobNotFoundError):
            await ava.get_job("job_missing")
        jobs = await asyncio.gather(*(ava.run_job(worker.id, {"i": i}) for i in range(3)))
        finished = await asyncio.gather(*(ava.wait_for_job(j.id, timeout_s=10) for j in jobs))
        assert sorted(j.result["i"] for j in finished) == [0, 1, 2]


def test_from_env_reads_the_ava_variables(url: str) -> None:
    h = headers()
    env = {
        "AVA_URL": url,
        "AVA_INTERNAL_SECRET": SECRET,
        "AVA_TENANT_ID": h["x-tenant-id"],
        "AVA_USER_ID": "usr_env",
        "AVA_ROLE": "tenant-admin",
    }
    with AvaClient.from_env(env) as ava:
        assert make_worker(ava).created_by == "usr_env"


# -- the SSE parser -----------------------------------------------------------------------------


def test_sse_parser_reads_log_and_end_events() -> None:
    parser = SseParser()
    raw = [
        ": keep-alive",
        "id: 7",
        "event: log",
        'data: {"ts": "t", "stream": "stderr", "attempt": 2, "line": "x: y"}',
        "",
        "event: end",
        'data: {"status": "failed"}',
        "",
    ]
    events = [ev for ev in map(parser.feed, raw) if ev is not None]
    assert events == [LogEntry("t", "stderr", 2, "x: y"), LogEnd("failed")]
    assert parser.last_id == 7
