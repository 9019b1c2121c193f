"""Deploy and versions routes: upload a bundle, list versions, read a build log, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from ava_platform.api.auth import json_body_guard
from ava_platform.api.deps import DeployDep, PrincipalDep, VersionsDep
from ava_platform.api.paging import Page, PerPage
from ava_platform.models import PageMeta, RollbackRequest, VersionInfo, VersionPage, Worker
from ava_platform.service.bundles import MAX_BUNDLE_BYTES
from ava_platform.service.deploy import DeployService
from ava_platform.service.versions import VersionService

VersionNumber = Annotated[int, QueryParameter(ge=1, le=1_000_000_000)]


class DeployController(Controller):
    """No json_body_guard here: the body is an archive."""

    path = "/workers/{worker_id:str}"
    tags = ["versions"]  # noqa: RUF012

    @post(
        "/deploy",
        summary="Deploy a source bundle (tar.gz or zip, ≤ 50 MiB); the build runs in the background",
        status_code=202,
        request_max_body_size=MAX_BUNDLE_BYTES,
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
    guards = [json_body_guard]  # noqa: RUF012

    @get("/versions", summary="List a worker's versions, newest first")
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

    @get("/versions/{version:int}", summary="Get one version")
    async def get_version(
        self,
        worker_id: FromPath[str],
        version: FromPath[int],
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> VersionInfo:
        return await versions.get(principal, worker_id, version)

    @get("/versions/{version:int}/build-log", summary="A version's build log (text)")
    async def build_log(
        self,
        worker_id: FromPath[str],
        version: FromPath[int],
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> Response[str]:
        text = await versions.build_log(principal, worker_id, version)
        return Response(text, media_type="text/plain; charset=utf-8")

    @post("/rollback", summary="Point the worker at an earlier ready version", status_code=200)
    async def rollback(
        self,
        worker_id: FromPath[str],
        data: JSONBody[RollbackRequest],
        versions: VersionsDep,
        principal: PrincipalDep,
    ) -> Worker:
        return await versions.rollback(principal, worker_id, data.version)


def dependencies(deploy: DeployService, versions: VersionService) -> dict[str, Provide]:
    async def provide_deploy() -> DeployService:
        return deploy

    async def provide_versions() -> VersionService:
        return versions

    return {"deploy": Provide(provide_deploy), "versions": Provide(provide_versions)}
