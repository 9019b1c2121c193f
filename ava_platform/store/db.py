"""The SQLite store's connections: one writer (all writes serialised behind a lock, each in
`BEGIN IMMEDIATE`) and one reader, both in WAL mode so reads never wait for writes.

A SQLite error (or a connection closed under a statement) never leaves this module raw: it
becomes errors.StoreError, with the driver's exception as its cause."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ava_platform.errors import StoreError
from ava_platform.store.migrations import MIGRATIONS

Params = Iterable[Any] | dict[str, Any]


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA busy_timeout=5000")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await _connect(self.path)
            await self._migrate(self._writer)
            self._reader = await _connect(self.path)
            await self._reader.execute("PRAGMA query_only=ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store at {self.path}: {exc}") from exc

    async def close(self) -> None:
        # forgotten first: a statement still running on one of them fails as a StoreError
        conns, self._reader, self._writer = (self._reader, self._writer), None, None
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

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            conn = self.writer
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
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
        """Runs and drains the statement in one step on the reader's thread. A cursor left
        open between awaits would pin the connection's read snapshot, and every other read
        sharing it would miss writes committed meanwhile (a job not found right after its
        trigger returned)."""
        reader = self.reader
        try:
            return list(await reader.execute_fetchall(sql, params))
        except (sqlite3.Error, ValueError) as exc:
            if not self._driver_error(exc, reader):
                raise
            raise _store_error("read", exc) from exc

    async def ping(self) -> bool:
        try:
            await self.fetchone("SELECT 1")
        except (StoreError, ValueError):
            return False
        return True


def _store_error(what: str, exc: BaseException) -> StoreError:
    # the driver's message stays on the cause (for the logs), out of what a client may be shown
    return StoreError(f"store {what} failed: {type(exc).__name__}")


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
