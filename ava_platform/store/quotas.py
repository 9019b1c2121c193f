"""QuotaStore: the per-tenant limits an operator set, and what each tenant holds now.
A limit left NULL means the setting's default (AVA_TENANT_MAX_RUNNING / _QUEUED)."""

from __future__ import annotations

import msgspec

from ava_platform.store.database import Database


class TenantQuota(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    max_running: int | None
    max_queued: int | None
    updated_at: str | None = None
    updated_by: str | None = None


class TenantLoad(msgspec.Struct, frozen=True):
    tenant_id: str
    queued: int
    running: int


class QuotaStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, tenant_id: str) -> TenantQuota | None:
        row = await self._db.fetchone(
            "SELECT tenant_id, max_running, max_queued, updated_at, updated_by "
            "FROM tenant_quotas WHERE tenant_id = ?",
            (tenant_id,),
        )
        return msgspec.convert(dict(row), TenantQuota) if row is not None else None

    async def put(self, quota: TenantQuota) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO tenant_quotas (tenant_id, max_running, max_queued, updated_at, "
                "updated_by) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET "
                "max_running = excluded.max_running, max_queued = excluded.max_queued, "
                "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (
                    quota.tenant_id,
                    quota.max_running,
                    quota.max_queued,
                    quota.updated_at,
                    quota.updated_by,
                ),
            )

    async def load(self) -> list[TenantLoad]:
        """Queued and running jobs of every tenant that has any (for /metrics)."""
        rows = await self._db.fetchall(
            "SELECT tenant_id, "
            "sum(CASE WHEN status = 'queued' THEN 1 ELSE 0 END) AS queued, "
            "sum(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running "
            "FROM jobs WHERE status IN ('queued', 'running') GROUP BY tenant_id"
        )
        return [TenantLoad(r["tenant_id"], int(r["queued"]), int(r["running"])) for r in rows]
