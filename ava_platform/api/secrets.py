"""Secrets routes: PUT a value, list names (never values), DELETE."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import route
from ava_platform.api.paging import Page, PerPage
from ava_platform.models import PageMeta, SecretInfo, SecretPage, SecretPut
from ava_platform.service.auth import Permission
from ava_platform.service.secrets import MAX_NAME_LEN

_PUT = route(Permission.SECRETS_WRITE, 413, 415, 422)
_PUT["responses"][201] = ResponseSpec(SecretInfo, description="Created")
SecretName = Annotated[
    str,
    PathParameter(
        description="An environment variable name, not starting with AVA_.",
        schema_extra={
            "pattern": "^(?![Aa][Vv][Aa]_)[A-Za-z_][A-Za-z0-9_]*$",
            "maxLength": MAX_NAME_LEN,
        },
    ),
]


class SecretsController(Controller):
    path = "/secrets"
    tags = ["secrets"]  # noqa: RUF012

    @get("/", summary="List secret names (never values)", **route(Permission.SECRETS_LIST))
    async def list_secrets(
        self, request: Req, page: Page = 1, per_page: PerPage = 100
    ) -> SecretPage:
        secret_service = services(request).secret_service
        principal = caller(request)
        items, total = await secret_service.list(principal, page=page, per_page=per_page)
        return SecretPage(data=items, meta=PageMeta(page=page, per_page=per_page, total=total))

    @put(
        "/{name:str}",
        summary="Set or replace a secret (201 created, 200 replaced)",
        **_PUT,
    )
    async def put_secret(
        self, request: Req, name: SecretName, data: JSONBody[SecretPut]
    ) -> Response[SecretInfo]:
        secret_service = services(request).secret_service
        principal = caller(request)
        info, created = await secret_service.put(principal, name, data.value)
        return Response(info, status_code=201 if created else 200)

    @delete(
        "/{name:str}",
        summary="Delete a secret",
        status_code=204,
        **route(Permission.SECRETS_WRITE, 404, 422),
    )
    async def delete_secret(self, request: Req, name: SecretName) -> None:
        secret_service = services(request).secret_service
        principal = caller(request)
        await secret_service.delete(principal, name)
