"""The one seam between the stores and a database engine. Every store module (jobs, workers,
logs, ...) writes its SQL once, with `?` or `:name` placeholders, against this protocol; two
backends implement it: SQLite (store/db.py, the embedded default) and PostgreSQL
(store/postgres/). What differs between the two SQL dialects is a `Dialect` field, so a store
module names the difference instead of branching on the engine.

A connection inside `transaction()` offers what the stores use of it: `execute(sql, params)`,
awaited (a cursor with `rowcount`) or entered (`async with ... as cur: await cur.fetchone()`),
and `executemany`. Any driver error leaves a backend as errors.StoreError."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import msgspec

Params = Sequence[Any] | dict[str, Any]
# a result row: read by column name or position, and `dict(row)` works
Row = Any


class Dialect(msgspec.Struct, frozen=True, kw_only=True):
    """The SQL that differs between the backends, as fragments the stores splice in."""

    name: str  # "sqlite" or "postgres"
    # appended to a SELECT that is about to be updated in the same transaction
    for_update: str
    # appended to the claim's candidate SELECT: concurrent claimers pass over each other's row
    skip_locked: str
    # a statement taking a lock on `?` (a text key) until the transaction ends; None: the
    # backend's transactions are serialised already (SQLite's single writer)
    xact_lock: str | None
    json_object: str  # the function building a JSON object from key/value pairs


SQLITE = Dialect(
    name="sqlite", for_update="", skip_locked="", xact_lock=None, json_object="json_object"
)
POSTGRES = Dialect(
    name="postgres",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE OF j SKIP LOCKED",
    xact_lock="SELECT pg_advisory_xact_lock(hashtextextended(?, 0))",
    json_object="json_build_object",
)


class Database(Protocol):
    dialect: Dialect

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # bulk: rows by the thousand (log lines), which must not hold the event loop
    def transaction(self, *, bulk: bool = False) -> AbstractAsyncContextManager[Any]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...

    # a read whose size the caller cannot bound (a job's log): never stalls the event loop
    async def fetchall_bulk(self, sql: str, params: Params = ()) -> list[Row]: ...

    # one writing statement as its own transaction (one round trip where there is a network)
    async def write_one(self, sql: str, params: Params = ()) -> list[Row]: ...

    # the same, one at a time per process on a connection kept for it, so the one statement
    # run there (the scheduler's claim) is planned by one connection, not by every pooled one
    async def write_serial(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def schema_version(self) -> int: ...

    async def ping(self) -> bool: ...


async def xact_lock(conn: Any, dialect: Dialect, key: str) -> None:
    """Holds `key` until the transaction ends, where transactions run side by side."""
    if dialect.xact_lock is not None:
        await conn.execute(dialect.xact_lock, (key,))
