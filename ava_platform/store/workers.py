"""WorkerStore: workers and their immutable source versions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec

from ava_platform.models import Worker, WorkerStatus, WorkerVersion
from ava_platform.store.database import Database, Dialect, Row, xact_lock
from ava_platform.store.json_rows import decode_worker, json_bytes, json_page, worker_document

_COLUMNS = (
    "id, tenant_id, name, description, runtime, entrypoint, source_code, config, secrets, "
    "timeout_seconds, max_retries, memory_mb, cpus, network, isolation, max_concurrency, status, "
    "version, created_at, updated_at, created_by, input_schema, webhook_url"
)
_NAMES = [c.strip() for c in _COLUMNS.split(",")]
_PLACEHOLDERS = ", ".join(f":{c}" for c in _NAMES)
_UPDATE = (
    "UPDATE workers SET "
    + ", ".join(f"{c} = :{c}" for c in _NAMES if c not in ("id", "tenant_id"))
    + " WHERE id = :id AND tenant_id = :tenant_id"
)
MIN_TRIGRAM = 3
# a change to one worker: the new worker, and whether its source changed (a new version)
Change = Callable[[Worker], tuple[Worker, bool]]


def source_digest(source: str | None, entrypoint: str) -> str:
    return "sha256:" + hashlib.sha256(f"{entrypoint}\0{source or ''}".encode()).hexdigest()


async def _next_version(conn: Any, dialect: Dialect, worker: Worker) -> int:
    # a deploy taking a number side by side holds the same lock (store/versions.py)
    await xact_lock(conn, dialect, f"versions:{worker.id}")
    async with conn.execute(
        "SELECT coalesce(max(version), 0) FROM worker_versions WHERE worker_id = ?", (worker.id,)
    ) as cur:
        row = await cur.fetchone()
    return max(worker.version, int(row[0]) + 1)


def _to_row(worker: Worker) -> dict[str, Any]:
    row = msgspec.structs.asdict(worker)
    row["config"] = msgspec.json.encode(worker.config).decode()
    row["secrets"] = msgspec.json.encode(worker.secrets).decode()
    schema = worker.input_schema
    row["input_schema"] = None if schema is None else msgspec.json.encode(schema).decode()
    return row


def _from_row(row: Row) -> Worker:
    data = dict(row)
    data["config"] = msgspec.json.decode(data["config"])
    data["secrets"] = msgspec.json.decode(data["secrets"])
    if data["input_schema"] is not None:
        data["input_schema"] = msgspec.json.decode(data["input_schema"])
    return msgspec.convert(data, Worker)


class WorkerStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._worker_json = f"SELECT {worker_document(db.dialect)} FROM workers w"
        self._page_doc = worker_document(db.dialect, "t")

    async def insert(self, worker: Worker) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO workers ({_COLUMNS}) VALUES ({_PLACEHOLDERS})", _to_row(worker)
            )
            await self._insert_version(conn, worker, worker.created_by)

    async def modify(
        self, tenant_id: str, worker_id: str, change: Change, *, by: str
    ) -> Worker | None:
        """Reads, changes and saves one worker inside one write transaction, so concurrent
        changes never overwrite each other; None when the tenant has no such worker."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM workers WHERE id = ? AND tenant_id = ?"
                + self._db.dialect.for_update,
                (worker_id, tenant_id),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            worker, source_changed = change(_from_row(row))
            if source_changed:
                # after a rollback or beside a deploy still building, `version + 1` may be taken
                worker = msgspec.structs.replace(
                    worker, version=await _next_version(conn, self._db.dialect, worker)
                )
            await conn.execute(_UPDATE, _to_row(worker))
            if source_changed:
                await self._insert_version(conn, worker, by)
        return worker

    @staticmethod
    async def _insert_version(conn: Any, worker: Worker, by: str) -> None:
        await conn.execute(
            "INSERT INTO worker_versions (worker_id, version, source_digest, source_code, "
            "entrypoint, image, status, created_at, created_by) "
            "VALUES (?, ?, ?, ?, ?, NULL, 'ready', ?, ?)",
            (
                worker.id,
                worker.version,
                source_digest(worker.source_code, worker.entrypoint),
                worker.source_code,
                worker.entrypoint,
                worker.updated_at,
                by,
            ),
        )

    async def get(self, tenant_id: str, worker_id: str) -> Worker | None:
        body = await self.get_json(tenant_id, worker_id)
        return decode_worker(body) if body is not None else None

    async def get_json(self, tenant_id: str, worker_id: str) -> bytes | None:
        """The worker as the JSON of `Worker` the database holds or builds, or None."""
        row = await self._db.fetchone(
            f"{self._worker_json} WHERE w.id = ? AND w.tenant_id = ?", (worker_id, tenant_id)
        )
        return json_bytes(row[0]) if row else None

    async def get_any_tenant(self, worker_id: str) -> Worker | None:
        """For the scheduler, which acts on behalf of whichever tenant owns the job."""
        row = await self._db.fetchone(f"{self._worker_json} WHERE w.id = ?", (worker_id,))
        return decode_worker(row[0]) if row else None

    async def list(
        self,
        tenant_id: str,
        *,
        status: WorkerStatus | None,
        runtime: str | None,
        q: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Worker], int]:
        body, total = await self.list_json(
            tenant_id, status=status, runtime=runtime, q=q, limit=limit, offset=offset
        )
        return msgspec.json.decode(body, type=list[Worker]), total

    async def list_json(
        self,
        tenant_id: str,
        *,
        status: WorkerStatus | None,
        runtime: str | None,
        q: str | None,
        limit: int,
        offset: int,
    ) -> tuple[bytes, int]:
        """A page of the tenant's workers, newest first, as the JSON array of `Worker`s the
        database builds (served as is), and how many match."""
        where, params = _filters(self._db.dialect, tenant_id, status, runtime, q)
        return await json_page(
            self._db, self._page_doc, "workers", where, params, limit=limit, offset=offset
        )


def _filters(
    dialect: Dialect,
    tenant_id: str,
    status: WorkerStatus | None,
    runtime: str | None,
    q: str | None,
) -> tuple[str, list[Any]]:
    clauses = ["tenant_id = ?"]
    params: list[Any] = [tenant_id]
    if status is None:
        clauses.append("status IN ('active', 'paused')")
    else:
        clauses.append("status = ?")
        params.append(status.value)
    if runtime is not None:
        clauses.append("runtime = ?")
        params.append(runtime)
    if q and dialect.name == "postgres":
        # ILIKE with % and _ taken literally, answered by the pg_trgm index (any length)
        clauses.append("name ILIKE ? ESCAPE '\\'")
        params.append(_like_pattern(q))
    elif q and len(q) >= MIN_TRIGRAM:
        # a quoted phrase is a case-insensitive substring match answered by the trigram index
        # (LIKE with ESCAPE would make FTS5 scan every tenant's names); no wildcards exist here
        clauses.append("seq IN (SELECT rowid FROM workers_fts WHERE workers_fts MATCH ?)")
        params.append('"' + q.replace('"', '""') + '"')
    elif q:
        # too short for trigrams: a LIKE over the tenant's rows, with % and _ taken literally
        clauses.append("name LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(q))
    return " AND ".join(clauses), params


def _like_pattern(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class VersionStore:
    """Immutable source versions: a job runs the version it was queued with."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, worker_id: str, version: int) -> WorkerVersion | None:
        row = await self._db.fetchone(
            "SELECT worker_id, version, source_digest, entrypoint, status, image, source_code, "
            "error, created_at, created_by FROM worker_versions WHERE worker_id = ? AND version = ?",
            (worker_id, version),
        )
        return msgspec.convert(dict(row), WorkerVersion) if row else None
