"""Driver errors stay inside the store: on both backends (a real SQLite file, a real
PostgreSQL), a failed statement, commit or read surfaces as errors.StoreError (the driver's
exception only as its cause), and the store keeps working after it."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from ava_platform import errors
from ava_platform.store.database import Database

INTEGRITY = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)
BAD_QUERY = (sqlite3.OperationalError, asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError)


@pytest.fixture
async def db(store_db: Database) -> Database:
    async with store_db.transaction() as conn:
        await conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    return store_db


async def probe_ids(db: Database) -> list[int]:
    return [int(row["id"]) for row in await db.fetchall("SELECT id FROM probe ORDER BY id")]


async def test_a_constraint_violation_is_a_store_error_and_rolls_back(db: Database) -> None:
    with pytest.raises(errors.StoreError) as raised:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO probe (id, name) VALUES (1, 'a')")
            await conn.execute("INSERT INTO probe (id, name) VALUES (1, 'b')")
    assert not isinstance(raised.value, sqlite3.Error | asyncpg.PostgresError)
    assert isinstance(raised.value.__cause__, INTEGRITY)
    assert raised.value.code == "store_error"
    assert (
        "UNIQUE" not in raised.value.message and "duplicate" not in raised.value.message
    )  # the driver's words stay on the cause
    assert await probe_ids(db) == []  # the whole transaction rolled back
    async with db.transaction() as conn:  # and the writer is usable again
        await conn.execute("INSERT INTO probe (id, name) VALUES (1, 'a')")
    assert await probe_ids(db) == [1]


async def test_a_not_null_violation_is_a_store_error(db: Database) -> None:
    with pytest.raises(errors.StoreError) as raised:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO probe (id, name) VALUES (2, NULL)")
    assert isinstance(raised.value.__cause__, INTEGRITY)


async def test_a_connection_closed_inside_a_transaction_is_a_store_error(db: Database) -> None:
    with pytest.raises(errors.StoreError) as raised:
        async with db.transaction() as conn:
            await db.close()
            await conn.execute("INSERT INTO probe (id, name) VALUES (3, 'c')")
    assert not isinstance(raised.value, sqlite3.Error | ValueError | asyncpg.InterfaceError)
    with pytest.raises(errors.StoreError):  # a closed store stays a StoreError
        async with db.transaction():
            pass
    with pytest.raises(errors.StoreError):
        await db.fetchall("SELECT 1")


async def test_a_failed_read_is_a_store_error(db: Database) -> None:
    with pytest.raises(errors.StoreError) as raised:
        await db.fetchall("SELECT nope FROM probe")
    assert isinstance(raised.value.__cause__, BAD_QUERY)
    with pytest.raises(errors.StoreError):
        await db.fetchone("SELECT * FROM no_such_table")


async def test_a_platform_error_in_a_transaction_passes_unchanged(db: Database) -> None:
    with pytest.raises(errors.Conflict):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO probe (id, name) VALUES (4, 'd')")
            raise errors.Conflict("the state forbids it")
    with pytest.raises(ValueError, match="not a store error"):
        async with db.transaction():
            raise ValueError("not a store error")
    assert await probe_ids(db) == []
