"""The SQLite store's connections, all in WAL mode so reads never wait for writes: two writers
and two readers. Every write is serialised behind one lock, each in `BEGIN IMMEDIATE`. A
transaction of a few rows (a trigger, a claim, a binding, an attempt's end: tens to hundreds
of microseconds) runs on the event loop itself through the standard library's driver: a hop to
a connection thread and back costs more than the write, each statement took one, and on a busy
machine each hop waited milliseconds for a thread to run (an attempt's end took 6 ms, p90
16 ms). Batches of log lines (`transaction(bulk=True)`) run on aiosqlite's thread, so they
never stall the loop; that thread also checkpoints the WAL, which the inline writer never does
(a checkpoint writes the database file and syncs it).
Point reads (a row by key, a page of 20) run on the loop too; reads whose size the caller
cannot bound (a job's log, up to the log cap) take the threaded reader.

A SQLite error (or a connection closed under a statement) never leaves this module raw: it
becomes errors.StoreError, with the driver's exception as its cause."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ava_platform.errors import StoreError, StoreFull
from ava_platform.log import get_logger
from ava_platform.store.database import SQLITE
from ava_platform.store.documents import ensure_documents
from ava_platform.store.migrations import MIGRATIONS

Params = Sequence[Any] | dict[str, Any]
log = get_logger("ava.store")


_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)
# a WAL reader waits only while another connection recovers the log: never hold the loop long
_INLINE_BUSY_MS = 1000


def _connect_inline(path: Path) -> sqlite3.Connection:
    # check_same_thread off: the loop that opened it may differ from the one using it in tests,
    # and it is only ever used from one thread at a time (the loop's)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    conn.execute(f"PRAGMA busy_timeout={_INLINE_BUSY_MS}")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _connect_inline_writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    # never waits in practice: the lock keeps the other writer out; bounded all the same
    conn.execute(f"PRAGMA busy_timeout={_INLINE_BUSY_MS}")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the threaded writer checkpoints
    return conn


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn


class _Rows:
    """The rows of a statement already run and drained."""

    def __init__(self, rows: Iterable[sqlite3.Row]) -> None:
        self._rows = list(rows)

    async def fetchone(self) -> sqlite3.Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[sqlite3.Row]:
        rows, self._rows = self._rows, []
        return rows


class _Statement:
    """`await conn.execute(...)`: the cursor (its rowcount), in one hop to the writer's
    thread. `async with conn.execute(...) as cur`: the statement run and drained in one hop,
    where aiosqlite's own cursor takes three (execute, fetch, close), each a round trip through
    the loop on the path of every job."""

    def __init__(self, conn: aiosqlite.Connection, sql: str, params: Params) -> None:
        self._conn, self._sql, self._params = conn, sql, params

    def __await__(self) -> Generator[Any, None, aiosqlite.Cursor]:
        return self._conn.execute(self._sql, self._params).__await__()

    async def __aenter__(self) -> _Rows:
        return _Rows(await self._conn.execute_fetchall(self._sql, self._params))

    async def __aexit__(self, *_: object) -> None:
        return None


class _Transaction:
    """What `transaction()` yields: the writer, as the stores use it."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> _Statement:
        return _Statement(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


class _InlineStatement:
    """`_Statement` on the loop's own writer: run at once, nothing to wait for."""

    def __init__(self, conn: sqlite3.Connection, sql: str, params: Params) -> None:
        self._conn, self._sql, self._params = conn, sql, params

    def __await__(self) -> Generator[Any, None, sqlite3.Cursor]:
        return self._cursor()
        yield  # a generator that returns at once: awaiting it never suspends

    def _cursor(self) -> sqlite3.Cursor:
        return self._conn.execute(self._sql, self._params)

    async def __aenter__(self) -> _Rows:
        return _Rows(self._conn.execute(self._sql, self._params).fetchall())

    async def __aexit__(self, *_: object) -> None:
        return None


class _InlineTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> _InlineStatement:
        return _InlineStatement(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


# inline commits between two checkpoints of the WAL on the threaded writer (SQLite's own
# automatic checkpoint comes at 1,000 pages; a small transaction writes a few pages)
CHECKPOINT_EVERY = 200


class Database:
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_writer: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await _connect(self.path)
            await self._migrate(self._writer)
            await ensure_documents(self._writer)
            self._reader = await _connect(self.path)
            await self._reader.execute("PRAGMA query_only=ON")
            self._inline = _connect_inline(self.path)
            self._inline_writer = _connect_inline_writer(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store at {self.path}: {exc}") from exc

    async def close(self) -> None:
        # forgotten first: a statement still running on one of them fails as a StoreError
        conns, self._reader, self._writer = (self._reader, self._writer), None, None
        inline, self._inline = self._inline, None
        inline_writer, self._inline_writer = self._inline_writer, None
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        for sync_conn in (inline, inline_writer):
            if sync_conn is not None:
                sync_conn.close()
        for conn in conns:
            if conn is not None:
                await conn.close()

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            # executescript would COMMIT on its own; run statements one by one in our transaction
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    async def schema_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise StoreError("store is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    def _driver_error(self, exc: BaseException, conn: aiosqlite.Connection) -> bool:
        """A SQLite error, or aiosqlite's ValueError for a connection the store closed."""
        if isinstance(exc, sqlite3.Error):
            return True
        return isinstance(exc, ValueError) and conn not in (self._writer, self._reader)

    @property
    def inline_writer(self) -> sqlite3.Connection:
        if self._inline_writer is None:
            raise StoreError("store is not open")
        return self._inline_writer

    def transaction(
        self, *, bulk: bool = False
    ) -> contextlib.AbstractAsyncContextManager[_Transaction | _InlineTransaction]:
        """A write transaction: on the loop (a few rows), or on the writer's thread (`bulk`:
        rows by the thousand)."""
        return self._threaded() if bulk else self._inline_transaction()

    @asynccontextmanager
    async def _inline_transaction(self) -> AsyncIterator[_InlineTransaction]:
        async with self._lock:
            conn = self.inline_writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield _InlineTransaction(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):  # the body's error is the one to report
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _store_error("write", exc) from exc
                raise
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY == 0 and self._checkpoint is None:
            self._checkpoint = asyncio.ensure_future(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        try:
            async with self._lock:
                await self.writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (StoreError, sqlite3.Error, ValueError) as exc:
            log.warning("wal_checkpoint_failed", error=str(exc))
        finally:
            self._checkpoint = None

    @asynccontextmanager
    async def _threaded(self) -> AsyncIterator[_Transaction]:
        async with self._lock:
            conn = self.writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield _Transaction(conn)
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error, ValueError):
                    await conn.rollback()  # the body's error is the one to report
                if self._driver_error(exc, conn):
                    raise _store_error("write", exc) from exc
                raise
            await self._commit(conn)

    @staticmethod
    async def _commit(conn: aiosqlite.Connection) -> None:
        try:
            await conn.commit()
        except (sqlite3.Error, ValueError) as exc:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.rollback()  # never leave the writer inside a failed transaction
            raise _store_error("commit", exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A point read, run and drained in one step on the loop. Drained at once: a cursor
        left open would pin the connection's read snapshot, and every later read sharing it
        would miss writes committed meanwhile (a job not found right after its trigger)."""
        inline = self._inline
        if inline is None:
            raise StoreError("store is not open")
        try:
            return inline.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _store_error("read", exc) from exc

    async def fetchall_bulk(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """A read of unbounded size, run and drained in one step on the reader's thread."""
        reader = self.reader
        try:
            return list(await reader.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            if not self._driver_error(exc, reader):
                raise
            raise _store_error("read", exc) from exc

    async def write_one(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self.transaction() as conn, conn.execute(sql, params) as rows:
            return await rows.fetchall()

    async def write_serial(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """One writer serialises every write here already."""
        return await self.write_one(sql, params)

    async def ping(self) -> bool:
        try:
            await self.fetchone("SELECT 1")
        except (StoreError, ValueError):
            return False
        return True


def _store_error(what: str, exc: BaseException) -> StoreError:
    # the driver's message stays on the cause (for the logs), out of what a client may be shown
    if _disk_full(exc):
        return StoreFull(
            f"store {what} failed: the database disk is full; nothing was written, "
            "try again once space is freed"
        )
    return StoreError(f"store {what} failed: {type(exc).__name__}")


def _disk_full(exc: BaseException) -> bool:
    # SQLITE_FULL, or the I/O error a failed write to a full disk (WAL, journal) shows as
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return False
    primary = int(code) & 0xFF
    return primary == sqlite3.SQLITE_FULL or (
        primary == sqlite3.SQLITE_IOERR and "full" in str(exc).lower()
    )


def _split(script: str) -> list[str]:
    """Split on statement ends, keeping trigger bodies (which contain `;`) whole."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
