"""Quota routes: a tenant's limits and load (GET), an operator's override (PUT)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, put
from litestar.params import JSONBody, PathParameter

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import route
from ava_platform.models import HEADER_ID, Quota, QuotaPut
from ava_platform.service.auth import Permission

TenantId = Annotated[
    str, PathParameter(description="A tenant id.", schema_extra={"pattern": HEADER_ID.pattern})
]


class QuotasController(Controller):
    path = "/tenants/{tenant_id:str}/quota"
    tags = ["quotas"]  # noqa: RUF012

    @get("/", summary="A tenant's quotas and its queued and running jobs", **route(Permission.READ))
    async def get_quota(self, request: Req, tenant_id: TenantId) -> Quota:
        principal = caller(request)
        quotas = services(request).quotas
        return await quotas.get(principal, tenant_id)

    @put(
        "/",
        summary="Set a tenant's quotas (the platform operator: tenant-system-admin)",
        status_code=200,
        **route(Permission.QUOTAS_WRITE, 415, 422),
    )
    async def put_quota(self, request: Req, tenant_id: TenantId, data: JSONBody[QuotaPut]) -> Quota:
        principal = caller(request)
        quotas = services(request).quotas
        return await quotas.put(principal, tenant_id, data)
