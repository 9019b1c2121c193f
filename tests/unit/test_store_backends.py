"""What both store backends must agree on: the schema's version, name search, and data that
outlives a restart. SQLite-only details (WAL, query plans, user_version) are in test_store.py."""

from __future__ import annotations

from pathlib import Path

import httpx

from ava_platform.clock import SystemClock
from ava_platform.models import Role, Runtime, WorkerCreate
from ava_platform.service.auth import Principal
from ava_platform.service.workers import WorkerQuery, WorkerService
from ava_platform.store import migrations as sqlite_migrations
from ava_platform.store.database import Database
from ava_platform.store.postgres import migrations as postgres_migrations
from ava_platform.store.workers import VersionStore, WorkerStore
from tests.support import headers, thread_server


def test_the_two_migration_lists_move_in_lockstep() -> None:
    """A SQLite migration appended without its PostgreSQL twin (or the reverse) fails here:
    both backends must be at the same version with the same tables."""
    assert len(postgres_migrations.MIGRATIONS) == len(sqlite_migrations.MIGRATIONS)


async def test_a_fresh_store_is_at_the_latest_version_and_reopens_unchanged(
    store_db: Database,
) -> None:
    assert await store_db.schema_version() == len(sqlite_migrations.MIGRATIONS)
    await store_db.close()
    await store_db.open()  # a second start migrates nothing
    assert await store_db.schema_version() == len(sqlite_migrations.MIGRATIONS)


async def test_name_search_is_a_literal_case_insensitive_substring(store_db: Database) -> None:
    service = WorkerService(WorkerStore(store_db), VersionStore(store_db), SystemClock())
    who = Principal(tenant_id="ten_s", user_id="usr_a", role=Role.ADMIN)
    names = ["Alpha 100%_x", "alphabet", "Beta_1", "gamma%", "ALP", "b"]
    for name in names:
        await service.create(who, WorkerCreate(name=name, runtime=Runtime.PYTHON))
    other = Principal(tenant_id="ten_other", user_id="usr_a", role=Role.ADMIN)
    await service.create(other, WorkerCreate(name="alpha elsewhere", runtime=Runtime.PYTHON))
    for q in ["alp", "AL", "%_", "a_1", "%", "0%_X", "zzz", "b", "ta_"]:
        found, total = await service.list(who, WorkerQuery(q=q, per_page=100))
        expected = sorted(n for n in names if q.lower() in n.lower())
        assert sorted(w.name for w in found) == expected, q
        assert total == len(expected)


def test_data_survives_a_restart(db_path: Path, database_env: dict[str, str]) -> None:
    hdrs = headers()
    with thread_server(db_path, **database_env) as url:
        made = httpx.post(
            f"{url}/v1/ava/workers",
            headers=hdrs,
            json={"name": "kept", "runtime": "python", "source_code": "x"},
        )
        assert made.status_code == 201, made.text
    with thread_server(db_path, **database_env) as url:
        got = httpx.get(f"{url}/v1/ava/workers/{made.json()['id']}", headers=hdrs)
    assert got.status_code == 200 and got.json()["name"] == "kept"


async def test_a_page_counts_every_match_including_a_page_past_the_end(
    store_db: Database,
) -> None:
    """A page carries how many rows match its filters, whether it holds some of them or,
    past the last one, none (the count then comes from a statement of its own)."""
    service = WorkerService(WorkerStore(store_db), VersionStore(store_db), SystemClock())
    who = Principal(tenant_id="ten_p", user_id="usr_a", role=Role.ADMIN)
    for name in ("one", "two", "three"):
        await service.create(who, WorkerCreate(name=name, runtime=Runtime.PYTHON))
    await service.create(
        Principal(tenant_id="ten_other", user_id="usr_a", role=Role.ADMIN),
        WorkerCreate(name="elsewhere", runtime=Runtime.PYTHON),
    )
    pages = [await service.list(who, WorkerQuery(page=n, per_page=2)) for n in (1, 2, 3, 50)]
    assert [([w.name for w in found], total) for found, total in pages] == [
        (["three", "two"], 3),
        (["one"], 3),
        ([], 3),
        ([], 3),
    ]
    found, total = await service.list(who, WorkerQuery(q="thr", page=9))
    assert (found, total) == ([], 1)
