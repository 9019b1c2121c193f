"""Workers routes: thin — parse, one service call, return a Struct."""

from __future__ import annotations

from typing import Annotated, cast

from litestar import Controller, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import route
from ava_platform.api.paging import Page, PerPage, page_body, reject_unknown_filters
from ava_platform.errors import BadRequest
from ava_platform.models import (
    Runtime,
    Worker,
    WorkerCreate,
    WorkerPage,
    WorkerPatch,
    WorkerStatus,
)
from ava_platform.service.auth import Permission
from ava_platform.service.validation import has_control_chars
from ava_platform.service.workers import WorkerQuery

_FILTERS = {"filter[status]", "filter[runtime]"}


class WorkersController(Controller):
    path = "/workers"
    tags = ["workers"]  # noqa: RUF012

    @get("/", summary="List workers", **route(Permission.READ))
    async def list_workers(
        self,
        request: Req,
        status: Annotated[
            WorkerStatus | None,
            QueryParameter(name="filter[status]", description="active | paused | deprecated"),
        ] = None,
        runtime: Annotated[
            Runtime | None,
            QueryParameter(
                name="filter[runtime]", description="nodejs | python | deno | shell | wasm"
            ),
        ] = None,
        q: Annotated[
            str | None, QueryParameter(max_length=200, description="Search workers by name.")
        ] = None,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> WorkerPage:
        workers = services(request).workers
        principal = caller(request)
        reject_unknown_filters(request.query_params, _FILTERS)
        if q is not None and has_control_chars(q):
            # names never hold them (validation.check_name), and a NUL cuts a full-text query
            raise BadRequest("q must not contain control characters", code="bad_request")
        query = WorkerQuery(status=status, runtime=runtime, q=q, page=page, per_page=per_page)
        items, total = await workers.list_json(principal, query)
        return page_body(WorkerPage, items, page=page, per_page=per_page, total=total)

    @post(
        "/",
        summary="Create a worker",
        status_code=201,
        **route(Permission.MANAGE, 413, 415, 422, 503),
    )
    async def create_worker(self, request: Req, data: JSONBody[WorkerCreate]) -> Worker:
        workers = services(request).workers
        principal = caller(request)
        return await workers.create(principal, data)

    @get("/{worker_id:str}", summary="Get a worker", **route(Permission.READ, 404))
    async def get_worker(self, request: Req, worker_id: FromPath[str]) -> Worker:
        # the store's JSON as is: the annotation still gives the schema (api/paging.py)
        return cast(Worker, await services(request).workers.get_json(caller(request), worker_id))

    @patch(
        "/{worker_id:str}",
        summary="Update a worker",
        **route(Permission.MANAGE, 404, 409, 413, 415, 422, 503),
    )
    async def update_worker(
        self, request: Req, worker_id: FromPath[str], data: JSONBody[WorkerPatch]
    ) -> Worker:
        workers = services(request).workers
        principal = caller(request)
        return await workers.update(principal, worker_id, data)

    @delete(
        "/{worker_id:str}",
        summary="Delete (deprecate) a worker",
        status_code=200,
        **route(Permission.MANAGE, 404, 409),
    )
    async def delete_worker(self, request: Req, worker_id: FromPath[str]) -> Worker:
        workers = services(request).workers
        principal = caller(request)
        return await workers.deprecate(principal, worker_id)
