"""Jobs routes: trigger, read, list, cancel, and logs as text, NDJSON or Server-Sent Events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, Stream
from litestar.response.sse import ServerSentEventMessage

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import STORE_INT_MAX, operation, route
from ava_platform.api.paging import Page, PerPage, page_body, reject_unknown_filters
from ava_platform.models import FINISHED, Job, JobCreate, JobPage, JobStatus
from ava_platform.service.auth import Permission
from ava_platform.service.jobs import MAX_WAIT_S, JobQuery, JobService

PAGE_LINES = 1000
SSE_POLL_S = 1.0
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
TEXT = "text/plain"
_EVENT_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() also takes "²"
_TRIGGER = route(Permission.RUN, 404, 409, 413, 415, 422, 429, 503)
_TRIGGER["responses"][200] = ResponseSpec(Job, description="The job finished within `wait`")


_FIND = {"filter[error_type]", "filter[created_after]", "filter[created_before]"}
ErrorTypeFilter = Annotated[
    str | None,
    QueryParameter(
        name="filter[error_type]",
        max_length=64,
        description="The final error's type: handler_error, timeout, cancelled, platform, …",
    ),
]
CreatedAfter = Annotated[
    str | None,
    QueryParameter(
        name="filter[created_after]",
        max_length=64,
        description="Jobs created after this ISO 8601 time (with offset or Z).",
    ),
]
CreatedBefore = Annotated[
    str | None,
    QueryParameter(
        name="filter[created_before]",
        max_length=64,
        description="Jobs created before this ISO 8601 time (with offset or Z).",
    ),
]


class JobsController(Controller):
    path = "/"
    tags = ["jobs"]  # noqa: RUF012

    @post(
        "/workers/{worker_id:str}/jobs",
        summary="Trigger a job",
        status_code=202,
        operation_class=operation(optional_body=True),
        **_TRIGGER,
    )
    async def trigger(
        self,
        worker_id: FromPath[str],
        request: Req,
        data: JSONBody[JobCreate | None] = None,
        wait: Annotated[
            float | None,
            QueryParameter(
                ge=0,
                le=MAX_WAIT_S,
                description="Seconds to wait for the result (≤ 60).",
                schema_extra={"minimum": 0},  # Litestar leaves out a bound of 0
            ),
        ] = None,
    ) -> Response[Job]:
        principal = caller(request)
        jobs = services(request).jobs
        key = request.headers.get("idempotency-key")
        job, _ = await jobs.trigger(
            principal,
            worker_id,
            data.input if data else {},
            idempotency_key=key,
            webhook_url=data.webhook_url if data else None,
        )
        if wait:
            job = await jobs.wait(principal, job.id, wait)
        return Response(job, status_code=200 if job.status in FINISHED else 202)

    @get("/jobs", summary="List jobs", **route(Permission.READ, 404))
    async def list_jobs(
        self,
        request: Req,
        status: Annotated[JobStatus | None, QueryParameter(name="filter[status]")] = None,
        worker_id: Annotated[str | None, QueryParameter(name="filter[worker_id]")] = None,
        error_type: ErrorTypeFilter = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> JobPage:
        reject_unknown_filters(
            request.query_params, {"filter[status]", "filter[worker_id]", *_FIND}
        )
        query = JobQuery(
            status=status,
            worker_id=worker_id,
            page=page,
            per_page=per_page,
            error_type=error_type,
            created_after=created_after,
            created_before=created_before,
        )
        return await _page(request, query)

    @get(
        "/workers/{worker_id:str}/jobs",
        summary="List a worker's jobs",
        **route(Permission.READ, 404),
    )
    async def list_worker_jobs(
        self,
        request: Req,
        worker_id: FromPath[str],
        status: Annotated[JobStatus | None, QueryParameter(name="filter[status]")] = None,
        error_type: ErrorTypeFilter = None,
        created_after: CreatedAfter = None,
        created_before: CreatedBefore = None,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> JobPage:
        reject_unknown_filters(request.query_params, {"filter[status]", *_FIND})
        query = JobQuery(
            status=status,
            worker_id=worker_id,
            page=page,
            per_page=per_page,
            error_type=error_type,
            created_after=created_after,
            created_before=created_before,
        )
        return await _page(request, query)

    @get("/jobs/{job_id:str}", summary="Get a job", **route(Permission.READ, 404))
    async def get_job(self, request: Req, job_id: FromPath[str]) -> Job:
        # the store's JSON as is: the annotation still gives the schema (api/paging.py)
        return cast(Job, await services(request).jobs.get_json(caller(request), job_id))

    @post(
        "/jobs/{job_id:str}/cancel",
        summary="Cancel a job",
        status_code=200,
        **route(Permission.RUN, 404, 409),
    )
    async def cancel_job(self, request: Req, job_id: FromPath[str]) -> Job:
        principal = caller(request)
        jobs = services(request).jobs
        return await jobs.cancel(principal, job_id)

    @post(
        "/jobs/{job_id:str}/rerun",
        summary="Re-run a finished job with the same input",
        status_code=202,
        **route(Permission.RUN, 404, 409, 429),
    )
    async def rerun_job(
        self,
        request: Req,
        job_id: FromPath[str],
        same_version: Annotated[
            bool,
            QueryParameter(
                description="Run the old job's version (409 version_not_runnable if it cannot "
                "run any more) instead of the worker's current one."
            ),
        ] = False,
    ) -> Job:
        principal = caller(request)
        jobs = services(request).jobs
        return await jobs.rerun(principal, job_id, same_version=same_version)

    @get(
        "/jobs/{job_id:str}/logs",
        summary="A job's log lines (text, NDJSON or SSE)",
        operation_class=operation(text_success=(200, (TEXT, NDJSON, SSE))),
        **route(Permission.READ, 404),
    )
    async def job_logs(
        self,
        request: Req,
        job_id: FromPath[str],
        follow: Annotated[
            bool, QueryParameter(description="Stream as Server-Sent Events.")
        ] = False,
    ) -> Response[Any]:
        principal = caller(request)
        jobs = services(request).jobs
        await jobs.get(principal, job_id)  # 404 before any streaming starts
        accept = request.headers.get("accept", "")
        if follow or SSE in accept:
            after = _last_event_id(request)
            return ServerSentEvent(_sse(jobs, principal, job_id, after))
        if NDJSON in accept:
            return Stream(_lines(jobs, principal, job_id, ndjson=True), media_type=NDJSON)
        return Stream(_lines(jobs, principal, job_id, ndjson=False), media_type=TEXT)


async def _page(request: Req, query: JobQuery) -> JobPage:
    """The page both job lists answer: the same query, with or without the worker in the path."""
    items, total = await services(request).jobs.page_json(caller(request), query)
    return page_body(JobPage, items, page=query.page, per_page=query.per_page, total=total)


async def _lines(jobs: JobService, who: Any, job_id: str, *, ndjson: bool) -> AsyncIterator[bytes]:
    after = 0
    while True:
        page = await jobs.logs(who, job_id, after_seq=after, limit=PAGE_LINES)
        if not page:
            return
        after = page[-1].seq
        if ndjson:
            yield b"".join(
                msgspec.json.encode(
                    {"ts": ln.ts, "stream": ln.stream, "attempt": ln.attempt, "line": ln.line}
                )
                + b"\n"
                for ln in page
            )
        else:
            yield "".join(ln.line + "\n" for ln in page).encode()


async def _sse(
    jobs: JobService, who: Any, job_id: str, after: int
) -> AsyncIterator[ServerSentEventMessage]:
    """Stored lines first, then each new line as it is stored; ends when the job has ended
    and every line is sent. Reads the store in pages, so no follower holds the whole log."""
    while True:
        status = await jobs.status(job_id)
        page = await jobs.logs(who, job_id, after_seq=after, limit=PAGE_LINES)
        for ln in page:
            after = ln.seq
            body = msgspec.json.encode(
                {"ts": ln.ts, "stream": ln.stream, "attempt": ln.attempt, "line": ln.line}
            )
            yield ServerSentEventMessage(data=body.decode(), id=ln.seq, event="log")
        if len(page) == PAGE_LINES:
            continue
        if status in FINISHED:
            yield ServerSentEventMessage(
                data=msgspec.json.encode({"status": status.value if status else None}).decode(),
                event="end",
            )
            return
        await jobs.wait_changed(job_id, SSE_POLL_S)


def _last_event_id(request: Request[Any, Any, Any]) -> int:
    """The seq of the last event the client got; anything malformed or beyond any stored seq
    replays from the start (a reconnect must never break the stream)."""
    raw = request.headers.get("last-event-id", "").strip()
    if not _EVENT_ID.fullmatch(raw):
        return 0
    seq = int(raw)
    return seq if seq <= STORE_INT_MAX else 0
