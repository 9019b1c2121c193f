"""On SQLite, every job and worker row keeps its JSON, as the API serves it, in a `doc` column
that triggers rewrite inside the same statement as each write to the row or to a job's
attempts (migration 13 added the column).

Why: SQLite reads run on the API process's own event loop, and building a page of 20 jobs
from their columns (json_object, json() of each JSON column, the attempts subquery) cost that
loop about 150 µs per request, seven times what reading 20 stored documents costs (#16). It is
not a cache: a trigger runs within the writing transaction, so no reader, of any tenant, ever
sees a document older than its row. PostgreSQL builds the same JSON in its own server process,
off the API's loop, and keeps doing so (store/json_rows.py `job_document`).

The triggers are written from json_rows' field lists each time the store opens, not frozen
in a migration: when those lists change, the next open replaces the triggers and rewrites
every document, in one transaction."""

from __future__ import annotations

import re

import aiosqlite

from ava_platform.log import get_logger
from ava_platform.store.database import SQLITE
from ava_platform.store.json_rows import job_columns, job_object, worker_columns, worker_object

log = get_logger("ava.store")

_JOB_DOC = f"UPDATE jobs SET doc = {job_object(SQLITE, 'jobs')}"
_WORKER_DOC = f"UPDATE workers SET doc = {worker_object(SQLITE, 'workers')}"
# name -> CREATE TRIGGER statement; an update of a column outside a document (a lease, a log
# byte count) fires nothing
TRIGGERS = {
    "jobs_doc_insert": f"AFTER INSERT ON jobs BEGIN {_JOB_DOC} WHERE seq = NEW.seq; END",
    "jobs_doc_update": (
        f"AFTER UPDATE OF {', '.join(job_columns())} ON jobs "
        f"BEGIN {_JOB_DOC} WHERE seq = NEW.seq; END"
    ),
    "job_attempts_doc_insert": (
        f"AFTER INSERT ON job_attempts BEGIN {_JOB_DOC} WHERE id = NEW.job_id; END"
    ),
    "job_attempts_doc_update": (
        f"AFTER UPDATE ON job_attempts BEGIN {_JOB_DOC} WHERE id = NEW.job_id; END"
    ),
    "job_attempts_doc_delete": (
        f"AFTER DELETE ON job_attempts BEGIN {_JOB_DOC} WHERE id = OLD.job_id; END"
    ),
    "workers_doc_insert": f"AFTER INSERT ON workers BEGIN {_WORKER_DOC} WHERE seq = NEW.seq; END",
    "workers_doc_update": (
        f"AFTER UPDATE OF {', '.join(worker_columns())} ON workers "
        f"BEGIN {_WORKER_DOC} WHERE seq = NEW.seq; END"
    ),
}


def _statement(name: str) -> str:
    return f"CREATE TRIGGER {name} {TRIGGERS[name]}"


def _normal(sql: str) -> str:
    # SQLite keeps a CREATE statement's text nearly as written
    return re.sub(r"\s+", " ", sql).strip()


async def _installed(conn: aiosqlite.Connection) -> dict[str, str]:
    marks = ", ".join("?" for _ in TRIGGERS)
    async with conn.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN ({marks})",
        list(TRIGGERS),
    ) as cur:
        return {str(name): _normal(str(sql)) for name, sql in await cur.fetchall()}


async def ensure_documents(conn: aiosqlite.Connection) -> None:
    """Install the triggers this code writes and rewrite every document, unless the store has
    them already (every open but the first after an upgrade)."""
    wanted = {name: _normal(_statement(name)) for name in TRIGGERS}
    if await _installed(conn) == wanted:
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        if await _installed(conn) != wanted:  # another process may have done it meanwhile
            for name in TRIGGERS:
                await conn.execute(f"DROP TRIGGER IF EXISTS {name}")
                await conn.execute(_statement(name))
            jobs = (await conn.execute(_JOB_DOC)).rowcount
            workers = (await conn.execute(_WORKER_DOC)).rowcount
            log.info("store_documents_rewritten", jobs=jobs, workers=workers)
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise
