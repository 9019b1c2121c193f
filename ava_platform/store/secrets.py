"""SecretStore: encrypted secret values, one row per (tenant, name). The store never sees a
plaintext value; `service/vault.py` encrypts before and decrypts after."""

from __future__ import annotations

import msgspec

from ava_platform.models import SecretInfo
from ava_platform.store.database import Database, Row, xact_lock


class SealedSecret(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    name: str
    ciphertext: bytes
    nonce: bytes
    key_version: str


_SEALED = "tenant_id, name, ciphertext, nonce, key_version"


def _sealed(row: Row) -> SealedSecret:
    return SealedSecret(
        tenant_id=row["tenant_id"],
        name=row["name"],
        ciphertext=bytes(row["ciphertext"]),
        nonce=bytes(row["nonce"]),
        key_version=row["key_version"],
    )


class SecretStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, sealed: SealedSecret, now: str) -> tuple[SecretInfo, bool]:
        """Creates or replaces; returns the stored info and whether it was created."""
        async with self._db.transaction() as conn:
            # two PUTs side by side: one creates, the other replaces (and says so)
            await xact_lock(conn, self._db.dialect, f"secret:{sealed.tenant_id}:{sealed.name}")
            async with conn.execute(
                "SELECT created_at FROM secrets WHERE tenant_id = ? AND name = ?",
                (sealed.tenant_id, sealed.name),
            ) as cur:
                existing = await cur.fetchone()
            await conn.execute(
                "INSERT INTO secrets (tenant_id, name, ciphertext, nonce, key_version, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, "
                "nonce = excluded.nonce, key_version = excluded.key_version, "
                "updated_at = excluded.updated_at",
                (
                    sealed.tenant_id,
                    sealed.name,
                    sealed.ciphertext,
                    sealed.nonce,
                    sealed.key_version,
                    now,
                    now,
                ),
            )
        created_at = existing["created_at"] if existing else now
        info = SecretInfo(name=sealed.name, created_at=created_at, updated_at=now)
        return info, existing is None

    async def page(
        self, tenant_id: str, *, limit: int, offset: int
    ) -> tuple[list[SecretInfo], int]:
        total = await self._db.fetchone(
            "SELECT count(*) FROM secrets WHERE tenant_id = ?", (tenant_id,)
        )
        rows = await self._db.fetchall(
            "SELECT name, created_at, updated_at FROM secrets WHERE tenant_id = ? "
            "ORDER BY name LIMIT ? OFFSET ?",
            (tenant_id, limit, offset),
        )
        items = [
            SecretInfo(name=r["name"], created_at=r["created_at"], updated_at=r["updated_at"])
            for r in rows
        ]
        return items, int(total[0]) if total else 0

    async def delete(self, tenant_id: str, name: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM secrets WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            )
            return int(cur.rowcount) > 0

    async def get_many(self, tenant_id: str, names: list[str]) -> list[SealedSecret]:
        if not names:
            return []
        marks = ", ".join("?" for _ in names)
        rows = await self._db.fetchall(
            f"SELECT {_SEALED} FROM secrets WHERE tenant_id = ? AND name IN ({marks})",
            [tenant_id, *names],
        )
        return [_sealed(r) for r in rows]

    async def not_under(
        self, key_version: str, limit: int, *, after: tuple[str, str] = ("", "")
    ) -> list[SealedSecret]:
        """Rows sealed under any key but `key_version`, after `(tenant_id, name)`, in order."""
        rows = await self._db.fetchall(
            f"SELECT {_SEALED} FROM secrets WHERE key_version != ? AND (tenant_id, name) > (?, ?) "
            "ORDER BY tenant_id, name LIMIT ?",
            (key_version, after[0], after[1], limit),
        )
        return [_sealed(r) for r in rows]

    async def reseal(self, old: SealedSecret, new: SealedSecret) -> bool:
        """Replaces `old` by `new` only if the row is still `old` (a PUT in between wins)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE secrets SET ciphertext = ?, nonce = ?, key_version = ? "
                "WHERE tenant_id = ? AND name = ? AND ciphertext = ? AND nonce = ?",
                (
                    new.ciphertext,
                    new.nonce,
                    new.key_version,
                    old.tenant_id,
                    old.name,
                    old.ciphertext,
                    old.nonce,
                ),
            )
            return int(cur.rowcount) > 0

    async def count_by_key_version(self) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT key_version, count(*) AS n FROM secrets GROUP BY key_version"
        )
        return {r["key_version"]: int(r["n"]) for r in rows}
