"""Secrets routes: PUT a value, list names (never values), DELETE."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, put
from litestar.di import Provide
from litestar.params import FromPath, JSONBody

from ava_platform.api.auth import json_body_guard
from ava_platform.api.deps import PrincipalDep, SecretsDep
from ava_platform.api.paging import Page, PerPage
from ava_platform.models import PageMeta, SecretInfo, SecretPage, SecretPut
from ava_platform.service.secrets import SecretService


class SecretsController(Controller):
    path = "/secrets"
    tags = ["secrets"]  # noqa: RUF012
    guards = [json_body_guard]  # noqa: RUF012

    @get("/", summary="List secret names (never values)")
    async def list_secrets(
        self,
        secret_service: SecretsDep,
        principal: PrincipalDep,
        page: Page = 1,
        per_page: PerPage = 100,
    ) -> SecretPage:
        items, total = await secret_service.list(principal, page=page, per_page=per_page)
        return SecretPage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))

    @put("/{name:str}", summary="Set or replace a secret (201 created, 200 replaced)")
    async def put_secret(
        self,
        name: FromPath[str],
        data: JSONBody[SecretPut],
        secret_service: SecretsDep,
        principal: PrincipalDep,
    ) -> Response[SecretInfo]:
        info, created = await secret_service.put(principal, name, data.value)
        return Response(info, status_code=201 if created else 200)

    @delete("/{name:str}", summary="Delete a secret", status_code=204)
    async def delete_secret(
        self, name: FromPath[str], secret_service: SecretsDep, principal: PrincipalDep
    ) -> None:
        await secret_service.delete(principal, name)


def dependencies(service: SecretService) -> dict[str, Provide]:
    async def provide() -> SecretService:
        return service

    return {"secret_service": Provide(provide)}
