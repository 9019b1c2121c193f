"""Deploy and versions routes: upload a bundle, list versions, read a build log, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, PathParameter

from ava_platform.api.deps import DeployDep, PrincipalDep, VersionsDep, provide_service
from ava_platform.api.openapi import STORE_INT_MAX, operation, route
from ava_platform.api.paging import Page, PerPage
from ava_platform.errors import Invalid, NotFound
from ava_platform.models import PageMeta, RollbackRequest, VersionInfo, VersionPage, Worker
from ava_platform.service.auth import Permission
from ava_platform.service.bundles import MAX_BUNDLE_BYTES
from ava_platform.service.deploy import DeployService
from ava_platform.service.versions import VersionService

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
    async def deploy(
        self,
        request: Request[Any, Any, Any],
        worker_id: FromPath[str],
        deploy: DeployDep,
        principal: PrincipalDep,
    ) -> VersionInfo:
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
        self,
        worker_id: FromPath[str],
        versions: VersionsDep,
        principal: PrincipalDep,
        page: Page = 1,
        per_page: PerPage = 20,
    ) -> VersionPage:
        items, total = await versions.page(principal, worker_id, page=page, per_page=per_page)
        return VersionPage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))

    @get("/versions/{version:int}", summary="Get one version", **route(Permission.READ, 404))
    async def get_version(
        self,
        worker_id: FromPath[str],
        version: VersionNumber,
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> VersionInfo:
        _stored_or_404(worker_id, version)
        return await versions.get(principal, worker_id, version)

    @get(
        "/versions/{version:int}/build-log",
        summary="A version's build log (text)",
        media_type="text/plain",
        **route(Permission.READ, 404),
    )
    async def build_log(
        self,
        worker_id: FromPath[str],
        version: VersionNumber,
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> Response[str]:
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
        self,
        worker_id: FromPath[str],
        data: JSONBody[RollbackRequest],
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> Worker:
        if not 1 <= data.version <= STORE_INT_MAX:
            message = f"must be between 1 and {STORE_INT_MAX}"
            raise Invalid(f"version: {message}", details=[{"field": "version", "message": message}])
        return await versions.rollback(principal, worker_id, data.version)


def _stored_or_404(worker_id: str, version: int) -> None:
    """A number the store cannot hold names no version (and would overflow its driver)."""
    if not 1 <= version <= STORE_INT_MAX:
        raise NotFound(f"worker {worker_id} has no version {version}", code="version_not_found")


def dependencies(deploy: DeployService, versions: VersionService) -> dict[str, Provide]:
    return {"deploy": provide_service(deploy), "versions": provide_service(versions)}
