"""ScheduleStore: cron schedules and the runs they fired. A run row is keyed by
(schedule_id, slot): claiming a slot is an insert that succeeds once, ever, so no slot fires
twice, whatever restarts happen around it."""

from __future__ import annotations

from typing import Any

import msgspec

from ava_platform.models import Schedule, ScheduleRun, ScheduleRunStatus
from ava_platform.store.database import Database, Row

_COLUMNS = "id, tenant_id, worker_id, cron, timezone, input, next_run_at, created_at, created_by"
_S_COLUMNS = ", ".join(f"s.{c.strip()}" for c in _COLUMNS.split(","))
_LAST_RUN = (
    "(SELECT CAST({json_object}('schedule_id', r.schedule_id, 'slot', r.slot, 'status', r.status, "
    "'job_id', r.job_id, 'reason', r.reason, 'created_at', r.created_at) AS TEXT) "
    "FROM schedule_runs r "
    "WHERE r.schedule_id = s.id ORDER BY r.slot DESC LIMIT 1) AS last_run"
)
_RUN_COLUMNS = "schedule_id, slot, status, job_id, reason, created_at"


def _schedule(row: Row) -> Schedule:
    data = dict(row)
    data["input"] = msgspec.json.decode(data["input"])
    last = data.pop("last_run", None)
    data["last_run"] = msgspec.json.decode(last) if last else None
    return msgspec.convert(data, Schedule)


def _run(row: Row) -> ScheduleRun:
    return msgspec.convert(dict(row), ScheduleRun)


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_run = _LAST_RUN.format(json_object=db.dialect.json_object)

    async def insert(self, schedule: Schedule) -> None:
        row = msgspec.structs.asdict(schedule)
        row.pop("last_run")
        row["input"] = msgspec.json.encode(schedule.input).decode()
        names = [c.strip() for c in _COLUMNS.split(",")]
        async with self._db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO schedules ({_COLUMNS}) VALUES ({', '.join(':' + n for n in names)})",
                row,
            )

    async def count(self, tenant_id: str, worker_id: str) -> int:
        row = await self._db.fetchone(
            "SELECT count(*) FROM schedules WHERE tenant_id = ? AND worker_id = ?",
            (tenant_id, worker_id),
        )
        return int(row[0]) if row else 0

    async def page(
        self, tenant_id: str, worker_id: str, *, limit: int, offset: int
    ) -> tuple[list[Schedule], int]:
        total = await self.count(tenant_id, worker_id)
        rows = await self._db.fetchall(
            f"SELECT {_S_COLUMNS}, {self._last_run} FROM schedules s "
            "WHERE s.tenant_id = ? AND s.worker_id = ? ORDER BY s.seq LIMIT ? OFFSET ?",
            (tenant_id, worker_id, limit, offset),
        )
        return [_schedule(r) for r in rows], total

    async def get(self, tenant_id: str | None, schedule_id: str) -> Schedule | None:
        where = "s.id = ?" + (" AND s.tenant_id = ?" if tenant_id is not None else "")
        params: list[Any] = [schedule_id] + ([tenant_id] if tenant_id is not None else [])
        row = await self._db.fetchone(
            f"SELECT {_S_COLUMNS}, {self._last_run} FROM schedules s WHERE {where}", params
        )
        return _schedule(row) if row else None

    async def delete(self, tenant_id: str, worker_id: str, schedule_id: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM schedules WHERE id = ? AND tenant_id = ? AND worker_id = ?",
                (schedule_id, tenant_id, worker_id),
            )
            if cur.rowcount == 0:
                return False
            await conn.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))
            return True

    async def due(self, now: str, limit: int = 100) -> list[Schedule]:
        rows = await self._db.fetchall(
            f"SELECT {_S_COLUMNS}, NULL AS last_run FROM schedules s WHERE s.next_run_at <= ? "
            "ORDER BY s.next_run_at LIMIT ?",
            (now, limit),
        )
        return [_schedule(r) for r in rows]

    async def earliest(self) -> str | None:
        row = await self._db.fetchone("SELECT min(next_run_at) FROM schedules")
        return str(row[0]) if row and row[0] else None

    async def claim(
        self, schedule_id: str, *, slot: str, seen_next: str, new_next: str, now: str
    ) -> bool:
        """In one transaction: move the schedule past `slot` (only if nobody else did) and
        record the slot as pending. True: this caller owns the slot and must queue its job."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE schedules SET next_run_at = ? WHERE id = ? AND next_run_at = ?",
                (new_next, schedule_id, seen_next),
            )
            if cur.rowcount == 0:
                return False
            cur = await conn.execute(
                "INSERT INTO schedule_runs (schedule_id, slot, status, created_at) "
                "VALUES (?, ?, 'pending', ?) ON CONFLICT DO NOTHING",
                (schedule_id, slot, now),
            )
            return int(cur.rowcount) == 1

    async def finish_run(
        self,
        schedule_id: str,
        slot: str,
        status: ScheduleRunStatus,
        *,
        job_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE schedule_runs SET status = ?, job_id = ?, reason = ? "
                "WHERE schedule_id = ? AND slot = ?",
                (status.value, job_id, reason, schedule_id, slot),
            )

    async def pending(self) -> list[ScheduleRun]:
        rows = await self._db.fetchall(
            f"SELECT {_RUN_COLUMNS} FROM schedule_runs WHERE status = 'pending' ORDER BY seq"
        )
        return [_run(r) for r in rows]

    async def runs(
        self, schedule_id: str, *, limit: int, offset: int
    ) -> tuple[list[ScheduleRun], int]:
        total = await self._db.fetchone(
            "SELECT count(*) FROM schedule_runs WHERE schedule_id = ?", (schedule_id,)
        )
        rows = await self._db.fetchall(
            f"SELECT {_RUN_COLUMNS} FROM schedule_runs WHERE schedule_id = ? "
            "ORDER BY slot DESC LIMIT ? OFFSET ?",
            (schedule_id, limit, offset),
        )
        return [_run(r) for r in rows], int(total[0]) if total else 0
