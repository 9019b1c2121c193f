"""The SQLite store on a real file: migrations, WAL, persistence across restarts, and query plans
that stay on indexes (no full table scans per page)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from ava_platform.clock import SystemClock
from ava_platform.models import (
    Job,
    PatchableStatus,
    Role,
    Runtime,
    WorkerCreate,
    WorkerPatch,
    WorkerStatus,
)
from ava_platform.service.auth import Principal
from ava_platform.service.workers import WorkerQuery, WorkerService
from ava_platform.store.db import Database, Params
from ava_platform.store.jobs import JobStore
from ava_platform.store.migrations import MIGRATIONS
from ava_platform.store.workers import VersionStore, WorkerStore
from tests.support import assert_documents_current, headers, thread_server


def schema(path: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        return list(rows)


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


async def open_db(path: Path) -> Database:
    db = Database(path)
    await db.open()
    return db


# --- migrations --------------------------------------------------------------------------------


async def test_fresh_file_gets_every_migration(db_path: Path) -> None:
    db = await open_db(db_path)
    try:
        assert await db.schema_version() == len(MIGRATIONS)
    finally:
        await db.close()
    assert user_version(db_path) == len(MIGRATIONS)
    tables = {name for kind, name, _ in schema(db_path) if kind == "table"}
    assert {"workers", "worker_versions", "workers_fts"} <= tables


async def test_second_open_changes_nothing(db_path: Path) -> None:
    db = await open_db(db_path)
    await db.close()
    first = schema(db_path)
    db = await open_db(db_path)
    await db.close()
    assert schema(db_path) == first
    assert user_version(db_path) == len(MIGRATIONS)


async def test_older_file_is_migrated_forward_keeping_its_rows(db_path: Path) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.executescript(MIGRATIONS[1])
        conn.execute("PRAGMA user_version = 2")
        conn.execute(
            "INSERT INTO workers (id, tenant_id, name, description, runtime, entrypoint, "
            "source_code, config, secrets, timeout_seconds, max_retries, memory_mb, cpus, "
            "network, max_concurrency, status, version, created_at, updated_at, created_by) "
            "VALUES ('wkr_old', 'ten_a', 'old one', '', 'python', 'main.py', NULL, '{}', '[]', "
            "300, 0, 256, 1.0, 'egress', NULL, 'active', 1, '2024-01-01T00:00:00.000000Z', "
            "'2024-01-01T00:00:00.000000Z', 'usr_a')"
        )
        conn.execute(
            "INSERT INTO jobs (id, tenant_id, worker_id, worker_version, status, input, result, "
            "attempt, max_retries, trigger, created_by, created_at, finished_at) "
            "VALUES ('job_old', 'ten_a', 'wkr_old', 1, 'succeeded', '{\"n\":1.0}', '[1]', 1, 0, "
            "'api', 'usr_a', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:01.000000Z')"
        )
    db = await open_db(db_path)
    try:
        assert await db.schema_version() == len(MIGRATIONS)
        store = WorkerStore(db)
        worker = await store.get("ten_a", "wkr_old")
        assert worker is not None and worker.name == "old one"
        found, count = await store.list(
            "ten_a", status=None, runtime=None, q="old", limit=20, offset=0
        )
        assert count == 1 and [w.id for w in found] == ["wkr_old"]
        # a job older than its settings gets them, isolation (added later still) included,
        # whole in the JSON a list serves as stored
        jobs = JobStore(db)
        body, total = await jobs.page_json("ten_a", status=None, worker_id=None, limit=20, offset=0)
        (job,) = msgspec.json.decode(body, type=list[Job])
        assert total == 1 and job.input == {"n": 1.0} and job.result == [1]
        assert job.run.isolation == "container" and job.run.runtime == "python"
        assert msgspec.json.encode(msgspec.json.decode(body)) == msgspec.json.encode([job])
    finally:
        await db.close()


async def test_documents_follow_the_code_that_opens_the_store(db_path: Path) -> None:
    """The triggers keeping each row's JSON are the opening code's: a store written by code
    whose triggers differ has them replaced and every document rewritten; a store whose
    triggers match is left as it is, documents untouched (no rewrite at every start)."""
    db = await open_db(db_path)
    try:
        who = Principal(tenant_id="ten_d", user_id="usr_a", role=Role.ADMIN)
        made = await service_of(db).create(who, WorkerCreate(name="kept", runtime=Runtime.PYTHON))
    finally:
        await db.close()
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        # as an older version's store: one trigger of another shape, documents out of date
        conn.execute("DROP TRIGGER workers_doc_update")
        conn.execute(
            "CREATE TRIGGER workers_doc_update AFTER UPDATE OF name ON workers BEGIN SELECT 1; END"
        )
        conn.execute("UPDATE workers SET doc = '{}'")
    db = await open_db(db_path)
    try:
        assert await WorkerStore(db).get("ten_d", made.id) == made
        await service_of(db).update(who, made.id, WorkerPatch(description="changed"))
    finally:
        await db.close()
    assert_documents_current(db_path)  # the replaced trigger followed the description
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        conn.execute("UPDATE workers SET doc = json_set(doc, '$.name', 'marked')")
    db = await open_db(db_path)
    try:
        found = await WorkerStore(db).get("ten_d", made.id)
        assert found is not None and found.name == "marked"
    finally:
        await db.close()


def service_of(db: Database) -> WorkerService:
    return WorkerService(WorkerStore(db), VersionStore(db), SystemClock())


async def test_file_is_in_wal_mode(db_path: Path) -> None:
    db = await open_db(db_path)
    try:
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await db.close()


async def test_reads_do_not_wait_for_an_open_write(db_path: Path) -> None:
    db = await open_db(db_path)
    try:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO worker_versions (worker_id, version, source_digest, "
                "entrypoint, status, created_at, created_by) "
                "VALUES ('wkr_x', 1, 'd', 'main.py', 'ready', 't', 'u')"
            )
            row = await asyncio.wait_for(db.fetchone("SELECT count(*) FROM worker_versions"), 2)
            assert row is not None and row[0] == 0  # the uncommitted row is not seen
        row = await db.fetchone("SELECT count(*) FROM worker_versions")
        assert row is not None and row[0] == 1
    finally:
        await db.close()


# --- persistence across restarts ---------------------------------------------------------------


def test_data_survives_a_restart(db_path: Path) -> None:
    tenant = headers()
    with thread_server(db_path) as url:
        api = httpx.Client(base_url=f"{url}/v1/ava", headers=tenant)
        kept = api.post("/workers", json={"name": "kept worker", "runtime": "python"}).json()
        patched = api.patch(
            f"/workers/{kept['id']}", json={"source_code": "v2", "config": {"K": 1}}
        ).json()
        gone = api.post("/workers", json={"name": "gone worker", "runtime": "shell"}).json()
        gone = api.delete(f"/workers/{gone['id']}").json()
        api.close()
    before = schema(db_path)
    with thread_server(db_path) as url:
        api = httpx.Client(base_url=f"{url}/v1/ava", headers=tenant)
        assert api.get(f"/workers/{kept['id']}").json() == patched
        assert patched["version"] == 2
        assert api.get(f"/workers/{gone['id']}").json() == gone
        assert [w["id"] for w in api.get("/workers").json()["data"]] == [kept["id"]]
        assert api.get("/workers", params={"q": "worker"}).json()["meta"]["total"] == 1
        deprecated = api.get("/workers", params={"filter[status]": "deprecated"}).json()
        assert [w["id"] for w in deprecated["data"]] == [gone["id"]]
        api.close()
    assert schema(db_path) == before


# --- query plans -------------------------------------------------------------------------------


class RecordingDatabase(Database):
    """The real database, remembering every read query so its plan can be checked."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queries: list[tuple[str, Params]] = []

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        self.queries.append((sql, params))
        return await super().fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        self.queries.append((sql, params))
        return await super().fetchall(sql, params)


async def _seed(path: Path) -> None:
    db = await open_db(path)
    service = WorkerService(WorkerStore(db), VersionStore(db), SystemClock())
    runtimes = list(Runtime)
    try:
        for tenant in ("ten_target", "ten_noise"):
            who = Principal(tenant_id=tenant, user_id="usr_a", role=Role.ADMIN)
            for i in range(150):
                data = WorkerCreate(name=f"Name {i} 100%_x", runtime=runtimes[i % len(runtimes)])
                worker = await service.create(who, data)
                if i % 3 == 0:
                    await service.deprecate(who, worker.id)
                elif i % 3 == 1:
                    await service.update(who, worker.id, WorkerPatch(status=PatchableStatus.PAUSED))
    finally:
        await db.close()


@pytest.fixture(scope="module")
def seeded_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plans") / "ava.db"
    asyncio.run(_seed(path))
    return path


@pytest.fixture
async def seeded(seeded_path: Path) -> AsyncIterator[tuple[RecordingDatabase, WorkerService]]:
    db = RecordingDatabase(seeded_path)
    await db.open()
    try:
        yield db, WorkerService(WorkerStore(db), VersionStore(db), SystemClock())
    finally:
        await db.close()


FULL_SCAN = re.compile(r"\bSCAN (workers|w)\b(?!_fts)")


@pytest.mark.parametrize("status", [None, *WorkerStatus])
@pytest.mark.parametrize("runtime", [None, Runtime.PYTHON])
@pytest.mark.parametrize("q", [None, "Na", "%_", "name 1", "0%_x"])
async def test_list_queries_use_indexes_not_table_scans(
    seeded: tuple[RecordingDatabase, WorkerService],
    status: WorkerStatus | None,
    runtime: Runtime | None,
    q: str | None,
) -> None:
    db, service = seeded
    who = Principal(tenant_id="ten_target", user_id="usr_a", role=Role.VIEWER)
    db.queries.clear()
    query = WorkerQuery(status=status, runtime=runtime, q=q, page=2, per_page=5)
    _, count = await service.list(who, query)
    assert len(db.queries) >= 1
    for sql, params in list(db.queries):
        plan = [str(row[3]) for row in await db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params)]
        text = "\n".join(plan)
        assert not FULL_SCAN.search(text), text
        assert re.search(r"SEARCH (workers|w) USING (COVERING )?INDEX workers_tenant", text) or (
            re.search(r"SEARCH (workers|w) USING INTEGER PRIMARY KEY", text)
        ), text
        if q is not None and len(q) >= 3:
            # the trigram index answers the search itself (a bare "INDEX 0:" is a full FTS scan)
            assert re.search(r"SCAN workers_fts VIRTUAL TABLE INDEX 0:\S", text), text
    assert count == expected_count(db.path, status, runtime, q)


def expected_count(
    path: Path, status: WorkerStatus | None, runtime: Runtime | None, q: str | None
) -> int:
    """The same question answered by brute force in Python."""
    with sqlite3.connect(path) as conn:
        rows: list[Any] = conn.execute(
            "SELECT status, runtime, name FROM workers WHERE tenant_id = 'ten_target'"
        ).fetchall()
    statuses = {"active", "paused"} if status is None else {status.value}
    return sum(
        1
        for s, r, name in rows
        if s in statuses
        and (runtime is None or r == runtime.value)
        and (not q or q.lower() in name.lower())
    )
