"""BuildStore: the deploy side of worker versions (bundle versions and their builds). The rows
live in `worker_versions` beside the inline versions WorkerStore writes; a number is taken
once, inside a write transaction, so a deploy and a source PATCH never claim the same one."""

from __future__ import annotations

import msgspec

from ava_platform.models import VersionInfo, VersionStatus
from ava_platform.store.database import Database, Row, xact_lock

_INFO = (
    "worker_id, version, source_digest, entrypoint, status, image, error, created_at, "
    "created_by, bundle, finished_at"
)


class VersionRow(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    version: int
    source_digest: str
    entrypoint: str
    status: VersionStatus
    image: str | None
    error: str | None
    created_at: str
    created_by: str
    bundle: bool
    finished_at: str | None
    source_code: str | None = None

    def info(self, current: int) -> VersionInfo:
        return VersionInfo(
            worker_id=self.worker_id,
            version=self.version,
            kind="bundle" if self.bundle else "inline",
            source_digest=self.source_digest,
            entrypoint=self.entrypoint,
            status=self.status,
            image=self.image,
            error=self.error,
            current=self.version == current,
            created_at=self.created_at,
            created_by=self.created_by,
            finished_at=self.finished_at,
        )


def _row(row: Row) -> VersionRow:
    data = dict(row)
    data["bundle"] = bool(data["bundle"])
    return msgspec.convert(data, VersionRow)


def _storable(number: int) -> bool:
    """Stored integers are signed 64-bit on both backends: a number beyond names no row
    (binding it would raise OverflowError)."""
    return -(2**63) <= number < 2**63


class BuildStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_building(
        self,
        worker_id: str,
        *,
        digest: str,
        entrypoint: str,
        by: str,
        now: str,
        owner: str | None = None,
        lease_until: str | None = None,
    ) -> int:
        """Records a new bundle version (status building); returns its number. Beside other
        processes, `owner` (the building process) holds it until `lease_until`, renewed while
        the build runs; a lapsed one is a dead process's (fail_unfinished)."""
        async with self._db.transaction() as conn:
            await xact_lock(conn, self._db.dialect, f"versions:{worker_id}")
            async with conn.execute(
                "SELECT coalesce(max(version), 0) + 1 FROM worker_versions WHERE worker_id = ?",
                (worker_id,),
            ) as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 1
            await conn.execute(
                "INSERT INTO worker_versions (worker_id, version, source_digest, source_code, "
                "entrypoint, image, status, created_at, created_by, bundle, build_owner, "
                "build_lease_until) VALUES (?, ?, ?, NULL, ?, NULL, 'building', ?, ?, 1, ?, ?)",
                (worker_id, version, digest, entrypoint, now, by, owner, lease_until),
            )
        return version

    async def finish(
        self,
        worker_id: str,
        version: int,
        *,
        status: VersionStatus,
        image: str | None,
        build_log: str,
        error: str | None,
        now: str,
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE worker_versions SET status = ?, image = ?, build_log = ?, error = ?, "
                "finished_at = ? WHERE worker_id = ? AND version = ?",
                (status.value, image, build_log, error, now, worker_id, version),
            )

    async def get(self, worker_id: str, version: int) -> VersionRow | None:
        if not _storable(version):
            return None
        row = await self._db.fetchone(
            f"SELECT {_INFO}, source_code FROM worker_versions WHERE worker_id = ? AND version = ?",
            (worker_id, version),
        )
        return _row(row) if row else None

    async def build_log(self, worker_id: str, version: int) -> str | None:
        if not _storable(version):
            return None
        row = await self._db.fetchone(
            "SELECT build_log FROM worker_versions WHERE worker_id = ? AND version = ?",
            (worker_id, version),
        )
        return str(row["build_log"]) if row else None

    async def page(
        self, worker_id: str, *, limit: int, offset: int
    ) -> tuple[list[VersionRow], int]:
        total = await self._db.fetchone(
            "SELECT count(*) FROM worker_versions WHERE worker_id = ?", (worker_id,)
        )
        rows = await self._db.fetchall(
            f"SELECT {_INFO} FROM worker_versions WHERE worker_id = ? "
            "ORDER BY version DESC LIMIT ? OFFSET ?",
            (worker_id, limit, offset),
        )
        return [_row(r) for r in rows], int(total[0]) if total else 0

    async def fail_unfinished(self, reason: str, now: str, *, lapsed_only: bool = False) -> int:
        """Builds that were running when the platform stopped: they failed. With
        `lapsed_only` (beside other processes), only those whose builder stopped renewing."""
        lapsed = " AND (build_lease_until IS NULL OR build_lease_until < ?)" if lapsed_only else ""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE worker_versions SET status = 'failed', error = ?, finished_at = ? "
                "WHERE status = 'building'" + lapsed,
                (reason, now, *([now] if lapsed_only else [])),
            )
            return int(cur.rowcount)

    async def renew_builds(self, owner: str, until: str) -> None:
        """Extends the leases of the builds `owner` runs."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE worker_versions SET build_lease_until = ? "
                "WHERE status = 'building' AND build_owner = ?",
                (until, owner),
            )

    async def prunable(self, worker_id: str, *, keep: int, current: int) -> list[tuple[int, str]]:
        """(version, image) of ready bundle images beyond the newest `keep`, sparing the
        current version and any version a queued or running job still needs."""
        rows = await self._db.fetchall(
            "SELECT version, image FROM worker_versions WHERE worker_id = ? AND status = 'ready' "
            "AND image IS NOT NULL ORDER BY version DESC",
            (worker_id,),
        )
        in_use = await self._db.fetchall(
            "SELECT DISTINCT worker_version FROM jobs WHERE worker_id = ? "
            "AND status IN ('queued', 'running')",
            (worker_id,),
        )
        spared = {current} | {int(r[0]) for r in in_use}
        return [
            (int(r["version"]), str(r["image"]))
            for r in rows[keep:]
            if int(r["version"]) not in spared
        ]

    async def set_pruned(self, worker_id: str, version: int) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE worker_versions SET status = 'pruned' WHERE worker_id = ? AND version = ?",
                (worker_id, version),
            )
