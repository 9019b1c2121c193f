"""Reads that come back from the database as one JSON document per job or worker.

The database builds each object (a job with its attempts included) in the model's field order,
and msgspec decodes it straight into the model, validated, in C. A page of jobs was three
statements plus a Python dict, four JSON decodes and a `convert` per row; it is now one
statement (the page's total is one of its columns), which is what the job and worker routes
spend most of their time on (#16). On SQLite the object is built once per write, by triggers,
and kept (store/documents.py); PostgreSQL builds it at each read, in its own process. A list
route serves the objects as built, not even decoded: every stored row is whole (migration 12
filled in the one field older rows lacked), and tests/unit/test_json_rows.py holds the built
JSON to the model's own encoding of it, byte for byte."""

from __future__ import annotations

from typing import Any

import msgspec

from ava_platform.models import Job, Worker
from ava_platform.store.database import Database, Dialect

# (key, column); a column holding JSON text is marked with a leading "~"
_JOB = [
    "id",
    "tenant_id",
    "worker_id",
    "worker_version",
    "status",
    "~input",
    "~result",
    "~error",
    "attempt",
    "max_retries",
    "@attempts",  # the job's attempts, from their own table
    "trigger",
    "schedule_id",
    "next_attempt_at",
    "~run",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
    "rerun_of",
    "webhook_url",
]
_ATTEMPT = ["number", "started_at", "finished_at", "outcome", "exit_code", "~error"]
_WORKER = [
    "id",
    "tenant_id",
    "name",
    "description",
    "runtime",
    "entrypoint",
    "source_code",
    "~config",
    "~secrets",
    "timeout_seconds",
    "max_retries",
    "memory_mb",
    ".cpus",
    "network",
    "isolation",
    "max_concurrency",
    "status",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "~input_schema",
    "webhook_url",
]


def _pairs(dialect: Dialect, names: list[str], alias: str, attempts: str = "") -> str:
    out = []
    for name in names:
        key = name.lstrip("~.@")
        column = f"{alias}.{key}"
        if name.startswith("@"):
            column = attempts
        elif name.startswith("~"):
            # stored as JSON text: embedded as JSON, not as a string holding JSON
            column = f"{column}::json" if dialect.name == "postgres" else f"json({column})"
        elif name.startswith(".") and dialect.name == "postgres":
            # a float: PostgreSQL writes 1.0 as 1, msgspec (and SQLite) as 1.0
            column = (
                f"CASE WHEN {column} = trunc({column}) "
                f"THEN (trunc({column})::bigint::text || '.0')::json ELSE to_json({column}) END"
            )
        out.append(f"'{key}', {column}")
    return ", ".join(out)


def job_object(dialect: Dialect, alias: str = "j") -> str:
    """A SELECT expression: the job of row `alias` as the JSON of `Job`, attempts included."""
    attempt = f"{dialect.json_object}({_pairs(dialect, _ATTEMPT, 'a')})"
    if dialect.name == "postgres":
        attempts = (
            f"coalesce((SELECT json_agg({attempt} ORDER BY a.number) FROM job_attempts a "
            f"WHERE a.job_id = {alias}.id), '[]'::json)"
        )
    else:
        # the subquery's values lose their JSON type: json() gives it back
        attempts = (
            f"(SELECT json_group_array(json(x)) FROM (SELECT {attempt} AS x FROM job_attempts a "
            f"WHERE a.job_id = {alias}.id ORDER BY a.number))"
        )
    return f"{dialect.json_object}({_pairs(dialect, _JOB, alias, attempts)})"


def worker_object(dialect: Dialect, alias: str = "w") -> str:
    """A SELECT expression: the worker of row `alias` as the JSON of `Worker`."""
    return f"{dialect.json_object}({_pairs(dialect, _WORKER, alias)})"


def job_document(dialect: Dialect, alias: str = "j") -> str:
    """What a read selects for the job of row `alias`: on SQLite the document its triggers keep
    (store/documents.py), on PostgreSQL the object built in its own process."""
    return f"{alias}.doc" if dialect.name == "sqlite" else job_object(dialect, alias)


def worker_document(dialect: Dialect, alias: str = "w") -> str:
    """As `job_document`, for a worker."""
    return f"{alias}.doc" if dialect.name == "sqlite" else worker_object(dialect, alias)


def job_columns() -> list[str]:
    """The jobs columns a job's JSON is built from (its attempts aside)."""
    return [name.lstrip("~.") for name in _JOB if not name.startswith("@")]


def worker_columns() -> list[str]:
    """The workers columns a worker's JSON is built from."""
    return [name.lstrip("~.") for name in _WORKER]


def _text(value: Any) -> str | bytes:
    # SQLite gives the JSON as text; asyncpg gives a json column as text as well
    return value if isinstance(value, str | bytes) else msgspec.json.encode(value)


def json_array(rows: list[Any]) -> bytes:
    """The objects of `rows` (first column) as one JSON array, as the database built them."""
    return b"[" + b",".join(json_bytes(r[0]) for r in rows) + b"]"


async def json_page(
    db: Database,
    doc: str,
    table: str,
    where: str,
    params: list[Any],
    *,
    limit: int,
    offset: int,
) -> tuple[bytes, int]:
    """A page of `table`'s rows matching `where`, newest first, as the JSON array of their
    documents (`doc`, a SELECT expression over alias `t`), and how many rows match. One
    statement carries both, the count as a second column (so from the page's snapshot); a
    page past the end has no row to carry it, and counts on its own."""
    count = f"SELECT count(*) FROM {table} WHERE {where}"
    rows = await db.fetchall(
        f"SELECT {doc}, ({count}) FROM {table} t WHERE {where} "
        "ORDER BY t.seq DESC LIMIT ? OFFSET ?",
        [*params, *params, limit, offset],
    )
    if rows:
        return json_array(rows), int(rows[0][1])
    row = await db.fetchone(count, params)
    return b"[]", int(row[0]) if row else 0


def json_bytes(value: Any) -> bytes:
    text = _text(value)
    return text.encode() if isinstance(text, str) else text


def decode_job(value: Any) -> Job:
    return msgspec.json.decode(_text(value), type=Job)


def decode_worker(value: Any) -> Worker:
    return msgspec.json.decode(_text(value), type=Worker)
