"""Per-tenant quotas: read by every role of the tenant, set only by the platform's operator
(`tenant-system-admin`, the role the gateway holding the internal secret gives its operators;
a tenant's own admin may not raise its own limits)."""

from __future__ import annotations

from ava_platform.clock import Clock, iso
from ava_platform.errors import BadRequest
from ava_platform.models import HEADER_ID, Quota, QuotaPut
from ava_platform.service.auth import Permission, Principal
from ava_platform.store.quotas import QuotaStore, TenantQuota


class QuotaService:
    def __init__(
        self, store: QuotaStore, clock: Clock, *, default_running: int, default_queued: int
    ) -> None:
        self._store = store
        self._clock = clock
        self._default_running = default_running
        self._default_queued = default_queued

    async def get(self, who: Principal, tenant_id: str) -> Quota:
        self._may_see(who, tenant_id)
        stored = await self._store.get(tenant_id)
        load = {t.tenant_id: t for t in await self._store.load()}.get(tenant_id)
        return Quota(
            tenant_id=tenant_id,
            max_running=stored.max_running if stored else None,
            max_queued=stored.max_queued if stored else None,
            effective_max_running=(stored and stored.max_running) or self._default_running,
            effective_max_queued=(stored and stored.max_queued) or self._default_queued,
            queued=load.queued if load else 0,
            running=load.running if load else 0,
            updated_at=stored.updated_at if stored else None,
            updated_by=stored.updated_by if stored else None,
        )

    async def put(self, who: Principal, tenant_id: str, data: QuotaPut) -> Quota:
        who.require(Permission.QUOTAS_WRITE)
        self._may_see(who, tenant_id)
        await self._store.put(
            TenantQuota(
                tenant_id=tenant_id,
                max_running=data.max_running,
                max_queued=data.max_queued,
                updated_at=iso(self._clock.now()),
                updated_by=who.user_id,
            )
        )
        return await self.get(who, tenant_id)

    @staticmethod
    def _may_see(who: Principal, tenant_id: str) -> None:
        who.require(Permission.READ)
        if not HEADER_ID.match(tenant_id):
            raise BadRequest(
                "tenant id must be 1-128 characters of [A-Za-z0-9_-]", code="bad_request"
            )
        if tenant_id != who.tenant_id:
            who.require(Permission.QUOTAS_WRITE)  # only the operator sees other tenants
