"""Schedules routes: create, list, get, delete, and a schedule's runs."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import route
from ava_platform.api.paging import Page, PerPage
from ava_platform.models import (
    PageMeta,
    Schedule,
    ScheduleCreate,
    SchedulePage,
    ScheduleRunPage,
)
from ava_platform.service.auth import Permission


class SchedulesController(Controller):
    path = "/workers/{worker_id:str}/schedules"
    tags = ["schedules"]  # noqa: RUF012

    @post(
        "/",
        summary="Create a cron schedule",
        status_code=201,
        **route(Permission.MANAGE, 404, 409, 413, 415, 422),
    )
    async def create_schedule(
        self, request: Req, worker_id: FromPath[str], data: JSONBody[ScheduleCreate]
    ) -> Schedule:
        schedules = services(request).schedules
        principal = caller(request)
        return await schedules.create(principal, worker_id, data)

    @get("/", summary="List a worker's schedules", **route(Permission.READ, 404))
    async def list_schedules(
        self, request: Req, worker_id: FromPath[str], page: Page = 1, per_page: PerPage = 20
    ) -> SchedulePage:
        schedules = services(request).schedules
        principal = caller(request)
        items, total = await schedules.page(principal, worker_id, page=page, per_page=per_page)
        return SchedulePage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))

    @get("/{schedule_id:str}", summary="Get a schedule", **route(Permission.READ, 404))
    async def get_schedule(
        self, request: Req, worker_id: FromPath[str], schedule_id: FromPath[str]
    ) -> Schedule:
        schedules = services(request).schedules
        principal = caller(request)
        return await schedules.get(principal, worker_id, schedule_id)

    @delete(
        "/{schedule_id:str}",
        summary="Delete a schedule",
        status_code=204,
        **route(Permission.MANAGE, 404),
    )
    async def delete_schedule(
        self, request: Req, worker_id: FromPath[str], schedule_id: FromPath[str]
    ) -> None:
        schedules = services(request).schedules
        principal = caller(request)
        await schedules.delete(principal, worker_id, schedule_id)

    @get(
        "/{schedule_id:str}/runs",
        summary="The slots a schedule fired: queued, skipped, failed",
        **route(Permission.READ, 404),
    )
    async def list_runs(
        self,
        request: Req,
        worker_id: FromPath[str],
        schedule_id: FromPath[str],
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> ScheduleRunPage:
        schedules = services(request).schedules
        principal = caller(request)
        items, total = await schedules.runs(
            principal, worker_id, schedule_id, page=page, per_page=per_page
        )
        return ScheduleRunPage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))
