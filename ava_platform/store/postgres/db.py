"""The PostgreSQL store's connections: a pool (asyncpg) shared by reads and transactions.

Transactions run side by side here (SQLite serialises them behind one writer), so the stores
take row locks (`Dialect.for_update`), skip each other's claims (`FOR UPDATE SKIP LOCKED`) and
hold advisory locks (`Dialect.xact_lock`) where a read decides a write. A driver error, a
refused connection or a pool closed under a statement never leaves this module raw: it becomes
errors.StoreError, with the driver's exception as its cause."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ava_platform.errors import StoreError, StoreFull
from ava_platform.store.database import POSTGRES, Params, Row
from ava_platform.store.postgres.migrations import MIGRATIONS
from ava_platform.store.postgres.sql import bind

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    asyncio.TimeoutError,
)
_MIGRATION_LOCK = 0x41564131  # one process migrates at a time; the others wait, then see it done


class Cursor:
    """What a statement returned: its rows (for a SELECT or RETURNING) and its row count."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    async def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[Row]:
        return list(self._rows)


class Statement:
    """`await conn.execute(...)` and `async with conn.execute(...) as cur`, as with aiosqlite."""

    def __init__(self, run: Callable[[], Awaitable[Cursor]]) -> None:
        self._run = run

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._run().__await__()

    async def __aenter__(self) -> Cursor:
        return await self._run()

    async def __aexit__(self, *exc: object) -> None:
        return None


def _returns_rows(sql: str) -> bool:
    upper = sql.lstrip().upper()
    return upper.startswith(("SELECT", "WITH")) or " RETURNING " in upper


def _count(status: str) -> int:
    """asyncpg's command tag ("UPDATE 3", "INSERT 0 1") ends with the affected row count."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class Connection:
    """One pooled connection inside a transaction, speaking the stores' placeholders."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Statement:
        text, args = bind(sql, params)

        async def run() -> Cursor:
            if _returns_rows(text):
                rows = await self._conn.fetch(text, *args)
                return Cursor(list(rows), len(rows))
            return Cursor([], _count(await self._conn.execute(text, *args)))

        return Statement(run)

    async def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        text, _ = bind(sql, ())
        await self._conn.executemany(text, rows)


class PostgresDatabase:
    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._serial: asyncpg.Pool | None = None  # one connection: write_serial's
        self._active = 0  # transactions holding a connection now

    async def open(self, *, connect_timeout_s: float = 60.0) -> None:
        """Connects (waiting up to `connect_timeout_s` for a server still starting, as beside
        it in a compose stack) and migrates."""
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                return await self._open()
            except StoreError as exc:
                if not _unreachable(exc.__cause__) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(1.0)

    async def _open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=60,
                reset=_no_reset,
            )
            async with self._pool.acquire() as conn:
                await _migrate(conn)
            self._serial = await asyncpg.create_pool(
                self.url, min_size=0, max_size=1, command_timeout=60, reset=_no_reset
            )
        except DRIVER_ERRORS as exc:
            raise StoreError(
                f"cannot open store at {_safe(self.url)}: {type(exc).__name__}"
            ) from exc

    async def close(self) -> None:
        # forgotten first: a statement still running fails as a StoreError, as on SQLite
        pool, self._pool = self._pool, None
        serial, self._serial = self._serial, None
        if serial is not None:
            if self._active:
                serial.terminate()
            else:
                await serial.close()
        if pool is None:
            return
        if self._active:
            pool.terminate()
        else:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self, *, bulk: bool = False) -> AsyncIterator[Connection]:
        """`bulk` changes nothing here: every statement is awaited on the driver's socket."""
        pool = self.pool
        try:
            conn = await pool.acquire()
        except DRIVER_ERRORS as exc:
            raise _store_error("write", exc) from exc
        self._active += 1
        try:
            async with self._in_transaction(conn) as wrapped:
                yield wrapped
        finally:
            self._active -= 1
            with contextlib.suppress(*DRIVER_ERRORS):
                await pool.release(conn)

    @asynccontextmanager
    async def _in_transaction(self, conn: asyncpg.Connection) -> AsyncIterator[Connection]:
        try:
            tx = conn.transaction()
            await tx.start()
        except DRIVER_ERRORS as exc:
            raise _store_error("write", exc) from exc
        try:
            yield Connection(conn)
        except BaseException as exc:
            with contextlib.suppress(*DRIVER_ERRORS):
                await tx.rollback()  # the body's error is the one to report
            if isinstance(exc, DRIVER_ERRORS):
                raise _store_error("write", exc) from exc
            raise
        try:
            await tx.commit()
        except DRIVER_ERRORS as exc:
            raise _store_error("commit", exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        text, args = bind(sql, params)
        try:
            return list(await self.pool.fetch(text, *args))
        except DRIVER_ERRORS as exc:
            raise _store_error("read", exc) from exc

    async def fetchall_bulk(self, sql: str, params: Params = ()) -> list[Row]:
        """The same as fetchall: the driver never blocks the loop, whatever the size."""
        return await self.fetchall(sql, params)

    async def write_one(self, sql: str, params: Params = ()) -> list[Row]:
        """Outside a transaction block, one statement commits on its own: no BEGIN, no COMMIT."""
        text, args = bind(sql, params)
        try:
            return list(await self.pool.fetch(text, *args))
        except DRIVER_ERRORS as exc:
            raise _store_error("write", exc) from exc

    async def write_serial(self, sql: str, params: Params = ()) -> list[Row]:
        """A statement of a kind run one at a time (the scheduler's claim) on one connection
        of its own: a pooled statement is planned afresh on each connection's first
        executions, several ms for the claim, and a process would pay that on every one."""
        serial = self._serial
        if serial is None:
            raise StoreError("store is not open")
        text, args = bind(sql, params)
        self._active += 1
        try:
            return list(await serial.fetch(text, *args))
        except DRIVER_ERRORS as exc:
            raise _store_error("write", exc) from exc
        finally:
            self._active -= 1

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT coalesce(max(version), 0) FROM ava_schema_version")
        return int(row[0]) if row else 0

    async def ping(self) -> bool:
        try:
            await self.fetchone("SELECT 1")
        except StoreError:
            return False
        return True


async def _no_reset(conn: asyncpg.Connection) -> None:
    """The stores leave no session state (no LISTEN, no session lock: advisory locks end with
    their transaction), so the driver's reset round trip on every release is skipped; only a
    transaction left open (a task cancelled mid-way) is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _migrate(conn: asyncpg.Connection) -> None:
    """Each pending migration in order, all in one transaction under an advisory lock, so
    processes starting together migrate once; the applied versions are rows of a table."""
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ava_schema_version (version INTEGER PRIMARY KEY)"
        )
        current = int(
            await conn.fetchval("SELECT coalesce(max(version), 0) FROM ava_schema_version")
        )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(script)  # no arguments: several statements in one go
            await conn.execute("INSERT INTO ava_schema_version (version) VALUES ($1)", number)


def _unreachable(exc: BaseException | None) -> bool:
    """No server to talk to yet: refused, unknown host, or still starting up."""
    return isinstance(exc, OSError | asyncpg.CannotConnectNowError)


def _safe(url: str) -> str:
    """The URL without its password, for a message a log may show."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{tail}"


def _store_error(what: str, exc: BaseException) -> StoreError:
    # the driver's message stays on the cause (for the logs), out of what a client may be shown
    if getattr(exc, "sqlstate", None) == _DISK_FULL:
        return StoreFull(
            f"store {what} failed: the database disk is full; nothing was written, "
            "try again once space is freed"
        )
    return StoreError(f"store {what} failed: {type(exc).__name__}")


_DISK_FULL = "53100"  # PostgreSQL's disk_full, the twin of SQLITE_FULL
