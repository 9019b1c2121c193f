"""LogStore: job log lines, appended in batches and read back by sequence number."""

from __future__ import annotations

from ava_platform.models import LogLine
from ava_platform.store.database import Database

_INT_MAX = 2**63 - 1  # the largest integer either backend stores
# A batch this small is written on the loop in one step (about 0.1 ms on SQLite): on the
# writer's thread the same five statements were five round trips through the loop, the flush
# of a job printing a line now and then the busiest of the loop's work while jobs run.
INLINE_LINES, INLINE_BYTES = 64, 64 * 1024


class LogStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, job_id: str, attempt: int, lines: list[tuple[str, str, str]], *, truncated: bool
    ) -> int:
        """Stores (ts, stream, line) rows in one transaction; returns the last seq written."""
        size = sum(len(line.encode()) + 1 for _, _, line in lines)
        bulk = len(lines) > INLINE_LINES or size > INLINE_BYTES
        async with self._db.transaction(bulk=bulk) as conn:
            await conn.executemany(
                "INSERT INTO job_logs (job_id, attempt, ts, stream, line) VALUES (?, ?, ?, ?, ?)",
                [(job_id, attempt, ts, stream, line) for ts, stream, line in lines],
            )
            await conn.execute(
                "UPDATE jobs SET log_bytes = log_bytes + ?, "
                "log_truncated = CASE WHEN ? = 1 THEN 1 ELSE log_truncated END WHERE id = ?",
                (size, int(truncated), job_id),
            )
            # one job's lines are written by its one runner: the newest is the batch's last
            async with conn.execute(
                "SELECT max(seq) FROM job_logs WHERE job_id = ?", (job_id,)
            ) as cur:
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def read(self, job_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[LogLine]:
        if after_seq >= _INT_MAX:  # no seq is beyond SQLite's largest integer
            return []
        after_seq, limit = max(after_seq, 0), max(0, min(limit, _INT_MAX))
        rows = await self._db.fetchall_bulk(  # up to `limit` lines of any length
            "SELECT seq, ts, stream, attempt, line FROM job_logs WHERE job_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (job_id, after_seq, limit),
        )
        return [LogLine(r["seq"], r["ts"], r["stream"], r["attempt"], r["line"]) for r in rows]
