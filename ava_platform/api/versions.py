"""Deploy and versions routes: upload a bundle, list versions, read a build log, roll back."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.params import FromPath, JSONBody, PathParameter

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import STORE_INT_MAX, operation, route
from ava_platform.api.paging import Page, PerPage
from ava_platform.errors import Invalid, NotFound
from ava_platform.models import PageMeta, RollbackRequest, VersionInfo, VersionPage, Worker
from ava_platform.service.auth import Permission
from ava_platform.service.bundles import MAX_BUNDLE_BYTES

VersionNumber = Annotated[
    int,
    PathParameter(
        description="A version number, from 1.",
        schema_extra={"minimum": 1, "maximum": STORE_INT_MAX},
    ),
]
BUNDLE_TYPES = ("application/gzip", "application/zip")


class DeployController(Controller):
    path = "/workers/{worker_id:str}"
    tags = ["versions"]  # noqa: RUF012

    @post(
        "/deploy",
        summary="Deploy a source bundle (tar.gz or zip, ≤ 50 MiB); the build runs in the background",
        status_code=202,
        request_max_body_size=MAX_BUNDLE_BYTES,
        operation_class=operation(binary_body=BUNDLE_TYPES),
        **route(Permission.MANAGE, 404, 409, 413, 415, 503, raw_body=True),
    )
    async def deploy(self, request: Req, worker_id: FromPath[str]) -> VersionInfo:
        deploy = services(request).deploys
        principal = caller(request)
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        return await deploy.deploy(principal, worker_id, body, content_type)


class VersionsController(Controller):
    path = "/workers/{worker_id:str}"
    tags = ["versions"]  # noqa: RUF012

    @get(
        "/versions",
        summary="List a worker's versions, newest first",
        **route(Permission.READ, 404),
    )
    async def list_versions(
        self, request: Req, worker_id: FromPath[str], page: Page = 1, per_page: PerPage = 20
    ) -> VersionPage:
        versions = services(request).versions
        principal = caller(request)
        items, total = await versions.page(principal, worker_id, page=page, per_page=per_page)
        return VersionPage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))

    @get("/versions/{version:int}", summary="Get one version", **route(Permission.READ, 404))
    async def get_version(
        self, request: Req, worker_id: FromPath[str], version: VersionNumber
    ) -> VersionInfo:
        versions = services(request).versions
        principal = caller(request)
        _stored_or_404(worker_id, version)
        return await versions.get(principal, worker_id, version)

    @get(
        "/versions/{version:int}/build-log",
        summary="A version's build log (text)",
        media_type="text/plain",
        **route(Permission.READ, 404),
    )
    async def build_log(
        self, request: Req, worker_id: FromPath[str], version: VersionNumber
    ) -> Response[str]:
        versions = services(request).versions
        principal = caller(request)
        _stored_or_404(worker_id, version)
        text = await versions.build_log(principal, worker_id, version)
        return Response(text, media_type="text/plain")

    @post(
        "/rollback",
        summary="Point the worker at an earlier ready version",
        status_code=200,
        **route(Permission.MANAGE, 404, 409, 413, 415, 422),
    )
    async def rollback(
        self, request: Req, worker_id: FromPath[str], data: JSONBody[RollbackRequest]
    ) -> Worker:
        versions = services(request).versions
        principal = caller(request)
        if not 1 <= data.version <= STORE_INT_MAX:
            message = f"must be between 1 and {STORE_INT_MAX}"
            raise Invalid(f"version: {message}", details=[{"field": "version", "message": message}])
        return await versions.rollback(principal, worker_id, data.version)


def _stored_or_404(worker_id: str, version: int) -> None:
    """A number the store cannot hold names no version (and would overflow its driver)."""
    if not 1 <= version <= STORE_INT_MAX:
        raise NotFound(f"worker {worker_id} has no version {version}", code="version_not_found")
