"""WebhookStore: each tenant's sealed signing secret, and the deliveries of finished jobs
with their attempts. A delivery is queued in the same transaction that ends its job (see
JobStore), and each retry is a row update (`next_attempt_at = now + backoff`), so a restart
loses none: a delivery is at least once."""

from __future__ import annotations

import msgspec

from ava_platform.store.database import Database
from ava_platform.store.secrets import SealedSecret

WEBHOOK_SECRET_NAME = "webhook-signing"  # the vault's associated data: no `|`

QUEUE_DELIVERY_SQL = (
    "INSERT INTO webhook_deliveries (id, job_id, tenant_id, url, status, attempts, "
    "next_attempt_at, created_at) "
    "SELECT ?, id, tenant_id, webhook_url, 'pending', 0, ?, ? FROM jobs "
    "WHERE id = ? AND webhook_url IS NOT NULL"
)


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    job_id: str
    tenant_id: str
    url: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


class DeliveryAttempt(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


_DELIVERY_COLUMNS = (
    "id, job_id, tenant_id, url, status, attempts, next_attempt_at, last_status_code, "
    "last_error, created_at, delivered_at"
)


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- signing secrets --------------------------------------------------------------------

    async def secret(self, tenant_id: str) -> SealedSecret | None:
        row = await self._db.fetchone(
            "SELECT tenant_id, ciphertext, nonce, key_version FROM webhook_secrets "
            "WHERE tenant_id = ?",
            (tenant_id,),
        )
        if row is None:
            return None
        return SealedSecret(
            tenant_id=row["tenant_id"],
            name=WEBHOOK_SECRET_NAME,
            ciphertext=bytes(row["ciphertext"]),
            nonce=bytes(row["nonce"]),
            key_version=row["key_version"],
        )

    async def put_secret(self, sealed: SealedSecret, now: str, *, replace: bool) -> bool:
        """Stores the tenant's secret; without `replace`, only if it has none (False: another
        request created one first, which wins)."""
        conflict = (
            "DO UPDATE SET ciphertext = excluded.ciphertext, nonce = excluded.nonce, "
            "key_version = excluded.key_version, created_at = excluded.created_at"
            if replace
            else "DO NOTHING"
        )
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO webhook_secrets (tenant_id, ciphertext, nonce, key_version, "
                f"created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id) {conflict}",
                (sealed.tenant_id, sealed.ciphertext, sealed.nonce, sealed.key_version, now),
            )
            return bool(cur.rowcount)

    # -- key rotation: the same rows protocol as SecretStore's (service/vault.py `rotate`) --

    async def not_under(
        self, key_version: str, limit: int, *, after: tuple[str, str] = ("", "")
    ) -> list[SealedSecret]:
        """Signing secrets sealed under any key but `key_version`, after `(tenant_id, _)`."""
        rows = await self._db.fetchall(
            "SELECT tenant_id, ciphertext, nonce, key_version FROM webhook_secrets "
            "WHERE key_version != ? AND tenant_id > ? ORDER BY tenant_id LIMIT ?",
            (key_version, after[0], limit),
        )
        return [
            SealedSecret(
                tenant_id=r["tenant_id"],
                name=WEBHOOK_SECRET_NAME,
                ciphertext=bytes(r["ciphertext"]),
                nonce=bytes(r["nonce"]),
                key_version=r["key_version"],
            )
            for r in rows
        ]

    async def reseal(self, old: SealedSecret, new: SealedSecret) -> bool:
        """Replaces `old` by `new` only if the row is still `old` (a rotation through the API
        in between wins: its fresh secret is never overwritten by the re-sealed old one)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE webhook_secrets SET ciphertext = ?, nonce = ?, key_version = ? "
                "WHERE tenant_id = ? AND ciphertext = ? AND nonce = ?",
                (
                    new.ciphertext,
                    new.nonce,
                    new.key_version,
                    old.tenant_id,
                    old.ciphertext,
                    old.nonce,
                ),
            )
            return int(cur.rowcount) > 0

    async def count_by_key_version(self) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT key_version, count(*) AS n FROM webhook_secrets GROUP BY key_version"
        )
        return {r["key_version"]: int(r["n"]) for r in rows}

    # -- deliveries -------------------------------------------------------------------------

    async def due(self, now: str, limit: int) -> list[Delivery]:
        rows = await self._db.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries "
            "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, seq "
            "LIMIT ?",
            (now, limit),
        )
        return [msgspec.convert(dict(r), Delivery) for r in rows]

    async def for_job(
        self, tenant_id: str, job_id: str
    ) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        rows = await self._db.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE job_id = ? "
            "AND tenant_id = ? ORDER BY seq",
            (job_id, tenant_id),
        )
        out = []
        for row in rows:
            attempts = await self._db.fetchall(
                "SELECT number, at, status_code, error, duration_ms FROM webhook_attempts "
                "WHERE delivery_id = ? ORDER BY number",
                (row["id"],),
            )
            out.append(
                (
                    msgspec.convert(dict(row), Delivery),
                    [msgspec.convert(dict(a), DeliveryAttempt) for a in attempts],
                )
            )
        return out

    async def record(
        self,
        delivery: Delivery,
        attempt: DeliveryAttempt,
        *,
        status: str,
        next_attempt_at: str | None,
    ) -> None:
        """One attempt's outcome and what follows: delivered, failed for good, or retried."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, number, at, status_code, error, "
                "duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    delivery.id,
                    attempt.number,
                    attempt.at,
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms,
                ),
            )
            await conn.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
                "last_status_code = ?, last_error = ?, delivered_at = ? WHERE id = ?",
                (
                    status,
                    attempt.number,
                    next_attempt_at,
                    attempt.status_code,
                    attempt.error,
                    attempt.at if status == "delivered" else None,
                    delivery.id,
                ),
            )
