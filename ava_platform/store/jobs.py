"""JobStore: the durable queue. Claiming is one atomic statement; a retry is a row update
(`status = queued`, `next_attempt_at = now + backoff`), never an in-memory sleep; a result is
accepted only from the job's current attempt."""

from __future__ import annotations

from typing import Any

import msgspec

from ava_platform.errors import QuotaExceeded, StoreError
from ava_platform.ids import new_id
from ava_platform.models import Attempt, AttemptOutcome, ErrorInfo, Job, JobStatus, RunSettings
from ava_platform.store.database import Database, Row, xact_lock
from ava_platform.store.json_rows import decode_job, job_document, json_bytes, json_page
from ava_platform.store.webhooks import QUEUE_DELIVERY_SQL

_JOB_COLUMNS = (
    "id, tenant_id, worker_id, worker_version, status, input, result, error, attempt, "
    "max_retries, trigger, schedule_id, next_attempt_at, run, created_by, created_at, "
    "started_at, finished_at, rerun_of, webhook_url"
)
# what an attempt needs, read in the claim's own transaction
_CLAIMED_SQL = (
    "SELECT j.id AS job_id, j.tenant_id, j.worker_id, j.worker_version, j.attempt, j.lost_count, "
    "j.log_bytes, j.run, j.input AS input_json, v.source_code FROM jobs j "
    "LEFT JOIN worker_versions v ON v.worker_id = j.worker_id AND v.version = j.worker_version "
    "WHERE j.id = ?"
)
# the same, returned by the claim itself, with the limits the claim checks (`c` is the claimed
# row); joined after the UPDATE, not in its RETURNING, where SQLite would scan these tables
_CLAIM_RETURNING = (
    "RETURNING id AS job_id, tenant_id, worker_id, worker_version, attempt, lost_count, "
    "log_bytes, run, input AS input_json"
)
_CLAIM_EXTRAS = "v.source_code, w.max_concurrency, q.max_running AS tenant_quota"
_CLAIM_EXTRAS_JOIN = (
    " LEFT JOIN worker_versions v ON v.worker_id = c.worker_id AND v.version = c.worker_version"
    " LEFT JOIN workers w ON w.id = c.worker_id"
    " LEFT JOIN tenant_quotas q ON q.tenant_id = c.tenant_id"
)
_CLAIM_EXTRAS_SQL = f"SELECT {_CLAIM_EXTRAS} FROM jobs c{_CLAIM_EXTRAS_JOIN} WHERE c.id = ?"
_ACTIVE = "('queued', 'running')"
# Fair share: among due jobs whose worker and tenant have a free slot, the tenant with the
# fewest running jobs first, then the tenant served longest ago, then the oldest job (so one
# tenant's order stays first in, first out). The tenant's running quota is its operator-set
# limit, else the AVA_TENANT_MAX_RUNNING default.
# Read off indexes, whatever the queue's length: the tenants with queued jobs by a skip scan
# of jobs_tenant_due's (status, tenant_id) prefix (one probe per tenant), each tenant's first
# eligible due job off the same index (on PostgreSQL the first its concurrent claimers have
# not locked), and only those heads are ordered: the same first row as ordering every due job.
# the first job by fair share: `seq`, and with {needs_check} whether its worker or tenant has a
# running limit (a claim of it then re-counts under a lock, in a transaction)
_PICK_SQL = (
    "  WITH RECURSIVE t(tenant_id) AS ("
    "    SELECT (SELECT tenant_id FROM jobs WHERE status = 'queued' ORDER BY tenant_id LIMIT 1)"
    "    UNION ALL"
    "    SELECT (SELECT u.tenant_id FROM jobs u WHERE u.status = 'queued' "
    "      AND u.tenant_id > t.tenant_id ORDER BY u.tenant_id LIMIT 1) "
    "    FROM t WHERE t.tenant_id IS NOT NULL"
    "  ), h AS ("
    "    SELECT t.tenant_id, (SELECT count(*) FROM jobs r WHERE r.status = 'running' "
    "      AND r.tenant_id = t.tenant_id) AS n, "
    "    (SELECT j.seq FROM jobs j JOIN workers w ON w.id = j.worker_id "
    "      WHERE j.status = 'queued' AND j.tenant_id = t.tenant_id "
    "      AND coalesce(j.next_attempt_at, '') <= :now "
    "      AND (w.max_concurrency IS NULL OR w.max_concurrency > ("
    "        SELECT count(*) FROM jobs x WHERE x.worker_id = j.worker_id "
    "        AND x.status = 'running')) "
    "      ORDER BY coalesce(j.next_attempt_at, j.created_at), j.seq LIMIT 1{skip_locked}"
    "    ) AS head FROM t WHERE t.tenant_id IS NOT NULL"
    "  )"
    "  SELECT h.head AS seq{needs_check} FROM h JOIN jobs p ON p.seq = h.head "
    "  LEFT JOIN tenant_quotas q ON q.tenant_id = h.tenant_id "
    "  LEFT JOIN tenant_claims c ON c.tenant_id = h.tenant_id "
    "  WHERE h.n < coalesce(q.max_running, :tenant_max_running) "
    "  ORDER BY h.n, coalesce(c.last_claim, 0), coalesce(p.next_attempt_at, p.created_at), "
    "    p.seq LIMIT 1"
)
_NEEDS_CHECK = (
    ", ((SELECT pw.max_concurrency FROM workers pw WHERE pw.id = p.worker_id) IS NOT NULL "
    "OR coalesce(q.max_running, :tenant_max_running) < :no_limit) AS needs_check"
)
_CLAIM_UPDATE = (
    "UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = :owner, "
    "lease_expires_at = :lease, started_at = coalesce(started_at, :now), "
    "next_attempt_at = NULL, container_id = NULL "
    "WHERE seq = ({pick}) AND status = 'queued' "
    "AND (SELECT count(*) FROM jobs WHERE status = 'running' AND lease_owner = :owner) "
    "< :max_running " + _CLAIM_RETURNING
)
_CLAIM_SQL = _CLAIM_UPDATE.replace("{pick}", _PICK_SQL.replace("{needs_check}", ""))
# the tenant just served goes behind every tenant served before it; one already alone behind
# them all is left as it is, so claims of one busy tenant do not queue on its row's lock
_ALREADY_LAST = (
    "NOT EXISTS (SELECT 1 FROM tenant_claims t WHERE t.tenant_id = {tenant} "
    "AND NOT EXISTS (SELECT 1 FROM tenant_claims o WHERE o.last_claim >= t.last_claim "
    "AND o.tenant_id <> t.tenant_id))"
)
_SERVED_SQL = (
    "INSERT INTO tenant_claims (tenant_id, last_claim) "
    "SELECT :tenant, (SELECT coalesce(max(last_claim), 0) + 1 FROM tenant_claims) "
    "WHERE " + _ALREADY_LAST.format(tenant=":tenant") + " "
    "ON CONFLICT (tenant_id) DO UPDATE SET last_claim = excluded.last_claim"
)
_ATTEMPT_SQL = "INSERT INTO job_attempts (job_id, number, started_at) VALUES (?, ?, ?)"
# PostgreSQL: the claim, its attempt row and the tenant's turn in one statement (one round
# trip where SQLite's writer takes three statements at no network cost)
_CLAIM_ONE_TRIP_SQL = "WITH c AS (" + _CLAIM_SQL + "), " + "{tail}"
_CLAIM_TAIL = (
    "a AS (INSERT INTO job_attempts (job_id, number, started_at) "
    "  SELECT job_id, attempt, :now FROM c), "
    "s AS (INSERT INTO tenant_claims (tenant_id, last_claim) "
    "  SELECT tenant_id, (SELECT coalesce(max(last_claim), 0) + 1 FROM tenant_claims) FROM c "
    "  WHERE " + _ALREADY_LAST.format(tenant="c.tenant_id") + " "
    "  ON CONFLICT (tenant_id) DO UPDATE SET last_claim = excluded.last_claim) "
    f"SELECT c.*, {_CLAIM_EXTRAS} FROM c{_CLAIM_EXTRAS_JOIN}"
)
_CLAIM_ONE_TRIP_SQL = _CLAIM_ONE_TRIP_SQL.replace("{tail}", _CLAIM_TAIL)
# PostgreSQL, no limit to re-count (the common case): the same in one statement committing on
# its own, one round trip; a row always comes back, its `needs_check` saying the first job has
# a limit (nothing was claimed: the claim then goes the transactional way)
_CLAIM_FAST_SQL = (
    "WITH pick AS MATERIALIZED (" + _PICK_SQL.replace("{needs_check}", _NEEDS_CHECK) + "), "
    "c AS ("
    + _CLAIM_UPDATE.replace("{pick}", "SELECT seq FROM pick WHERE NOT needs_check")
    + "), "
    + _CLAIM_TAIL.replace(
        "SELECT c.*", "SELECT c.*, (SELECT needs_check FROM pick) AS needs_check"
    ).replace(" FROM c LEFT JOIN", " FROM (SELECT 1) one LEFT JOIN c ON true LEFT JOIN", 1)
)
# PostgreSQL: up to :k claims in one statement, the jobs and order of :k claims one after
# another. Each tenant's due jobs come off its index (the first :k its concurrent claimers have
# not locked); its j-th (from 0) would be claimed with the tenant at n + j running. The fewest
# running go first, so claims go level by level of n + j. On a level, the tenants new to it
# (j = 0) come first, in fair-share order (last claim, then head age), then those served on
# the level below, in the order they were served there; unrolled, that is the order
# (n + j, n DESC, last claim, first job's age, its seq). The batch stops before the first job
# with a running limit (its worker's max_concurrency or its tenant's quota: `stop_at`): that
# one is claimed alone, the transactional way, re-counted under a lock. Written so that the
# plan stays index searches whatever the statistics say (a queue just filled is not analyzed
# yet): each tenant's jobs in index order (the worker looked up per job, not joined), and the
# UPDATE by primary key only (the rows are locked by this statement: still queued).
_BATCH_SQL = (
    "WITH RECURSIVE t(tenant_id) AS ("
    "    SELECT (SELECT tenant_id FROM jobs WHERE status = 'queued' ORDER BY tenant_id LIMIT 1)"
    "    UNION ALL"
    "    SELECT (SELECT u.tenant_id FROM jobs u WHERE u.status = 'queued' "
    "      AND u.tenant_id > t.tenant_id ORDER BY u.tenant_id LIMIT 1) "
    "    FROM t WHERE t.tenant_id IS NOT NULL"
    "), tn AS ("
    "  SELECT t.tenant_id, (SELECT count(*) FROM jobs r WHERE r.status = 'running' "
    "    AND r.tenant_id = t.tenant_id) AS n, coalesce(c.last_claim, 0) AS l, "
    "    coalesce(q.max_running, :tenant_max_running) AS quota "
    "  FROM t LEFT JOIN tenant_claims c ON c.tenant_id = t.tenant_id "
    "  LEFT JOIN tenant_quotas q ON q.tenant_id = t.tenant_id WHERE t.tenant_id IS NOT NULL"
    "), locked AS MATERIALIZED ("
    "  SELECT tn.tenant_id, tn.n, tn.l, tn.quota < :no_limit AS quota_limited, k.seq, k.due, "
    "    k.limited FROM tn CROSS JOIN LATERAL ("
    "    SELECT j.seq, coalesce(j.next_attempt_at, j.created_at) AS due, (SELECT "
    "      w.max_concurrency IS NOT NULL FROM workers w WHERE w.id = j.worker_id) AS limited "
    "    FROM jobs j "
    "    WHERE j.status = 'queued' AND j.tenant_id = tn.tenant_id AND tn.n < tn.quota "
    "      AND coalesce(j.next_attempt_at, '') <= :now "
    "      AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = j.worker_id "
    "        AND w.max_concurrency <= (SELECT count(*) FROM jobs x "
    "        WHERE x.worker_id = j.worker_id AND x.status = 'running')) "
    "    ORDER BY coalesce(j.next_attempt_at, j.created_at), j.seq LIMIT :k "
    "    FOR UPDATE OF j SKIP LOCKED) k"
    "), ranked AS MATERIALIZED ("
    "  SELECT seq, tenant_id, limited OR quota_limited AS needs_check, "
    "    row_number() OVER (ORDER BY n + jn, n DESC, l, first_due, first_seq) AS pos FROM ("
    "      SELECT *, row_number() OVER w - 1 AS jn, first_value(due) OVER w AS first_due, "
    "      first_value(seq) OVER w AS first_seq FROM locked "
    "      WINDOW w AS (PARTITION BY tenant_id ORDER BY due, seq)) o"
    "), chosen AS ("
    "  SELECT seq, tenant_id, pos FROM ranked WHERE pos <= :k "
    "  AND pos <= :max_running - (SELECT count(*) FROM jobs WHERE status = 'running' "
    "    AND lease_owner = :owner) "
    "  AND pos < coalesce((SELECT min(pos) FROM ranked WHERE needs_check), :k + 1)"
    "), c AS ("
    "  UPDATE jobs SET status = 'running', attempt = attempt + 1, lease_owner = :owner, "
    "  lease_expires_at = :lease, started_at = coalesce(started_at, :now), "
    "  next_attempt_at = NULL, container_id = NULL "
    "  WHERE seq = ANY (ARRAY(SELECT seq FROM chosen)) " + _CLAIM_RETURNING + ", seq"
    "), a AS ("
    "  INSERT INTO job_attempts (job_id, number, started_at) SELECT job_id, attempt, :now FROM c"
    "), served AS ("
    "  SELECT ch.tenant_id, row_number() OVER (ORDER BY max(ch.pos)) AS r, "
    "  count(*) OVER () AS tenants FROM chosen ch JOIN c ON c.seq = ch.seq GROUP BY ch.tenant_id"
    "), s AS ("
    "  INSERT INTO tenant_claims (tenant_id, last_claim) "
    "  SELECT tenant_id, (SELECT coalesce(max(last_claim), 0) FROM tenant_claims) + r "
    "  FROM served WHERE tenants > 1 OR " + _ALREADY_LAST.format(tenant="served.tenant_id") + " "
    "  ON CONFLICT (tenant_id) DO UPDATE SET last_claim = excluded.last_claim"
    ") "
    "SELECT x.*, (SELECT min(pos) FROM ranked WHERE needs_check) AS stop_at "
    "FROM (SELECT 1) one LEFT JOIN ("
    f"  SELECT c.*, {_CLAIM_EXTRAS}, ch.pos FROM c JOIN chosen ch ON ch.seq = c.seq"
    f"{_CLAIM_EXTRAS_JOIN}"
    ") x ON true ORDER BY x.pos"
)
_FINISH_SQL = (
    "UPDATE jobs SET status = :status, result = :result, error = :error, "
    "error_type = :error_type, next_attempt_at = :next, finished_at = :finished, "
    "lease_owner = NULL, lease_expires_at = NULL, container_id = NULL, "
    "lost_count = lost_count + :lost "
    "WHERE id = :id AND attempt = :attempt AND status = 'running'"
)
_FINISH_ATTEMPT_SQL = (
    "UPDATE job_attempts SET finished_at = :now, outcome = :outcome, exit_code = :exit_code, "
    "error = :attempt_error WHERE job_id = :id AND number = :attempt"
)


_NO_LIMIT = 2**62  # a tenant running quota no tenant reaches


class _NoSlot(Exception):
    """The claimed job's worker or tenant is at its limit: the claim rolls back."""


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one attempt needs, so the runner reads nothing else but secret values."""

    job_id: str
    tenant_id: str
    worker_id: str
    worker_version: int
    attempt: int
    lost_count: int
    log_bytes: int
    run: RunSettings
    source_code: str | None  # the pinned version's inline source; None: a bundle's image
    input_json: bytes  # the input exactly as validated and stored, never decoded here


class JobFilters(msgspec.Struct, frozen=True, kw_only=True):
    """What to find jobs to re-run by; times are stored-form ISO text (they sort as strings)."""

    error_type: str | None = None
    created_after: str | None = None
    created_before: str | None = None


def _filter_clauses(filters: JobFilters, clauses: list[str], params: list[Any]) -> None:
    if filters.error_type is not None:
        clauses.append("error_type = ?")
        params.append(filters.error_type)
    if filters.created_after is not None:
        clauses.append("created_at > ?")
        params.append(filters.created_after)
    if filters.created_before is not None:
        clauses.append("created_at < ?")
        params.append(filters.created_before)


class RunningRow(msgspec.Struct, frozen=True):
    job_id: str
    attempt: int
    container_id: str | None
    cancel_requested: bool


def _json(value: Any) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _job(row: Row, attempts: list[Attempt]) -> Job:
    data = dict(row)
    data["input"] = msgspec.json.decode(data["input"])
    data["result"] = msgspec.json.decode(data["result"]) if data["result"] else None
    data["error"] = msgspec.json.decode(data["error"]) if data["error"] else None
    data["run"] = msgspec.json.decode(data["run"])
    data["attempts"] = attempts
    return msgspec.convert(data, Job)


def _claimed(row: Row) -> Claimed:
    data = dict(row)
    data["run"] = msgspec.json.decode(data["run"], type=RunSettings)
    raw = data["input_json"]
    data["input_json"] = raw.encode() if isinstance(raw, str) else bytes(raw)
    return msgspec.convert(data, Claimed)


def _attempt(row: Row) -> Attempt:
    data = dict(row)
    data["error"] = msgspec.json.decode(data["error"]) if data["error"] else None
    return msgspec.convert(data, Attempt)


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._job_json = f"SELECT {job_document(db.dialect)} FROM jobs j"
        self._page_doc = job_document(db.dialect, "t")

    # -- queueing ---------------------------------------------------------------------------

    async def enqueue(
        self,
        job: Job,
        input_json: bytes,
        idempotency_key: str | None,
        window_start: str,
        *,
        max_queued: int | None = None,
    ) -> tuple[Job, bool]:
        """Inserts `job` with `input_json` (its input, encoded once by the caller that checked
        it), or returns the job already queued under the same key in the window. With
        `max_queued` (the default queued quota), refuses a job over the tenant's quota in the
        same transaction, so concurrent triggers cannot overshoot it."""
        async with self._db.transaction() as conn:
            if idempotency_key is not None:
                # processes enqueueing side by side: the first to hold the key decides
                await xact_lock(conn, self._db.dialect, f"idem:{job.tenant_id}:{job.worker_id}")
                async with conn.execute(
                    "SELECT id, created_at FROM jobs WHERE tenant_id = ? AND worker_id = ? "
                    "AND idempotency_key = ?",
                    (job.tenant_id, job.worker_id, idempotency_key),
                ) as cur:
                    existing = await cur.fetchone()
                if existing is not None and existing["created_at"] >= window_start:
                    first = await _load(conn, existing["id"])
                    return first, False
                if existing is not None:
                    await conn.execute(
                        "UPDATE jobs SET idempotency_key = NULL WHERE id = ?", (existing["id"],)
                    )
            if max_queued is not None:
                # processes enqueueing side by side: one tenant's count and insert go in turn
                await xact_lock(conn, self._db.dialect, f"queued:{job.tenant_id}")
                await _check_queued_quota(conn, job.tenant_id, max_queued)
            await conn.execute(
                "INSERT INTO jobs (id, tenant_id, worker_id, worker_version, status, input, "
                "max_retries, trigger, schedule_id, run, idempotency_key, created_by, created_at, "
                "rerun_of, webhook_url) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.tenant_id,
                    job.worker_id,
                    job.worker_version,
                    input_json.decode(),
                    job.max_retries,
                    job.trigger.value,
                    job.schedule_id,
                    msgspec.json.encode(job.run).decode(),
                    idempotency_key,
                    job.created_by,
                    job.created_at,
                    job.rerun_of,
                    job.webhook_url,
                ),
            )
        return job, True

    # -- reading ----------------------------------------------------------------------------

    async def get(self, tenant_id: str | None, job_id: str) -> Job | None:
        body = await self.get_json(tenant_id, job_id)
        return decode_job(body) if body is not None else None

    async def get_json(self, tenant_id: str | None, job_id: str) -> bytes | None:
        """The job as the JSON of `Job` the database builds (served as is), or None."""
        sql = f"{self._job_json} WHERE j.id = ?"
        params: list[Any] = [job_id]
        if tenant_id is not None:
            sql += " AND j.tenant_id = ?"
            params.append(tenant_id)
        row = await self._db.fetchone(sql, params)
        return json_bytes(row[0]) if row else None

    async def page(
        self,
        tenant_id: str,
        *,
        status: JobStatus | None,
        worker_id: str | None,
        limit: int,
        offset: int,
        filters: JobFilters | None = None,
    ) -> tuple[list[Job], int]:
        body, total = await self.page_json(
            tenant_id,
            status=status,
            worker_id=worker_id,
            limit=limit,
            offset=offset,
            filters=filters,
        )
        return msgspec.json.decode(body, type=list[Job]), total

    async def page_json(
        self,
        tenant_id: str,
        *,
        status: JobStatus | None,
        worker_id: str | None,
        limit: int,
        offset: int,
        filters: JobFilters | None = None,
    ) -> tuple[bytes, int]:
        """A page of the tenant's jobs, newest first, as the JSON array of `Job`s the database
        builds (served as is), and how many jobs match."""
        clauses, params = ["tenant_id = ?"], [tenant_id]
        if status is not None:
            clauses.append("status = ?")
            params.append(status.value)
        if worker_id is not None:
            clauses.append("worker_id = ?")
            params.append(worker_id)
        if filters is not None:
            _filter_clauses(filters, clauses, params)
        where = " AND ".join(clauses)
        return await json_page(
            self._db, self._page_doc, "jobs", where, params, limit=limit, offset=offset
        )

    async def status(self, job_id: str) -> JobStatus | None:
        row = await self._db.fetchone("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return JobStatus(row[0]) if row else None

    # -- the scheduler's side ---------------------------------------------------------------

    async def claim_next(
        self,
        *,
        now: str,
        owner: str,
        lease_until: str,
        max_running: int,
        tenant_max_running: int | None = None,
    ) -> Claimed | None:
        """One statement picks the next due job by fair share (README: fair share) whose
        worker and tenant have a free slot and marks it running, so two claimers can never take
        the same job (on PostgreSQL, claimers skip each other's locked rows). `max_running`
        bounds this owner's running jobs (its machine's capacity); a worker's max_concurrency
        and a tenant's running quota hold over every owner."""
        # no default of its own: only an operator's override, and each owner's max_running
        tenant_limit = tenant_max_running or _NO_LIMIT
        params = {
            "owner": owner,
            "lease": lease_until,
            "now": now,
            "max_running": max_running,
            "tenant_max_running": tenant_limit,
        }
        dialect = self._db.dialect
        one_trip = dialect.name == "postgres"
        if one_trip:
            claimed, needs_check = await self._claim_fast(params)
            if claimed is not None or not needs_check:
                return claimed  # None: nothing due, or this owner is full
        sql = (_CLAIM_ONE_TRIP_SQL if one_trip else _CLAIM_SQL).format(
            skip_locked=dialect.skip_locked
        )
        try:
            async with self._db.transaction() as conn:
                async with conn.execute(sql, params) as cur:
                    row = await cur.fetchone()
                if row is None:
                    return None
                data = dict(row)
                if not one_trip:
                    async with conn.execute(_CLAIM_EXTRAS_SQL, (data["job_id"],)) as cur:
                        extras = await cur.fetchone()
                    data.update(dict(extras))
                max_concurrency = data.pop("max_concurrency")
                quota = data.pop("tenant_quota")
                if max_concurrency is not None:
                    await self._check_worker_limit(conn, data["worker_id"], int(max_concurrency))
                limit = int(quota) if quota is not None else tenant_limit
                if limit < _NO_LIMIT:
                    await self._check_tenant_limit(conn, data["tenant_id"], limit)
                if not one_trip:
                    await conn.execute(_ATTEMPT_SQL, (data["job_id"], data["attempt"], now))
                    await conn.execute(_SERVED_SQL, {"tenant": data["tenant_id"]})
        except _NoSlot:
            return None
        return _claimed(data)

    async def claim_batch(
        self,
        *,
        now: str,
        owner: str,
        lease_until: str,
        max_running: int,
        limit: int,
        tenant_max_running: int | None = None,
    ) -> list[Claimed]:
        """Up to `limit` claims, the same jobs in the same order as `limit` calls of
        claim_next would take them (fewer: nothing more is claimable now). On PostgreSQL one
        statement claims them up to the first job with a running limit; that one and any
        after it are claimed one at a time, re-counted under a lock. One slot takes the same
        statement, run on the store's serial connection: a statement's first executions on a
        connection are planned afresh each, at several ms for one this size, so one
        connection plans it, not every pooled one."""
        claimed: list[Claimed] = []
        if self._db.dialect.name == "postgres" and limit > 0:
            rows = await self._db.write_serial(
                _BATCH_SQL,
                {
                    "owner": owner,
                    "lease": lease_until,
                    "now": now,
                    "max_running": max_running,
                    "tenant_max_running": tenant_max_running or _NO_LIMIT,
                    "no_limit": _NO_LIMIT,
                    "k": limit,
                },
            )
            stop_at = rows[0]["stop_at"] if rows else None
            for row in rows:
                data = dict(row)
                if data["job_id"] is None:
                    continue
                for extra in ("max_concurrency", "tenant_quota", "seq", "pos", "stop_at"):
                    data.pop(extra, None)
                claimed.append(_claimed(data))
            # stopped short by a job with a running limit, not by the queue or this owner
            if stop_at is None or len(claimed) != int(stop_at) - 1:
                return claimed
        while len(claimed) < limit:
            try:
                one = await self.claim_next(
                    now=now,
                    owner=owner,
                    lease_until=lease_until,
                    max_running=max_running,
                    tenant_max_running=tenant_max_running,
                )
            except StoreError:
                if not claimed:
                    raise
                break  # the claims made are committed: they must reach their runner
            if one is None:
                break
            claimed.append(one)
        return claimed

    async def _claim_fast(self, params: dict[str, Any]) -> tuple[Claimed | None, bool]:
        """PostgreSQL, one round trip: the claim of a job with no running limit to re-count,
        or (None, True) when the first job by fair share has one."""
        rows = await self._db.write_one(
            _CLAIM_FAST_SQL.format(skip_locked=self._db.dialect.skip_locked),
            {**params, "no_limit": _NO_LIMIT},
        )
        first = dict(rows[0]) if rows else {}
        needs_check = bool(first.pop("needs_check", False))
        if first.get("job_id") is None:
            return None, needs_check
        first.pop("max_concurrency", None)
        first.pop("tenant_quota", None)
        return _claimed(first), False

    async def _check_worker_limit(self, conn: Any, worker_id: str, limit: int) -> None:
        """Claims side by side each saw the others' running jobs as of their own start: under
        the worker's lock, a fresh count (this claim included) decides; over the limit, the
        claim rolls back. SQLite's single writer never gets here over the limit."""
        await xact_lock(conn, self._db.dialect, f"worker:{worker_id}")
        async with conn.execute(
            "SELECT count(*) FROM jobs WHERE worker_id = ? AND status = 'running'", (worker_id,)
        ) as cur:
            running = await cur.fetchone()
        if running is not None and int(running[0]) > limit:
            raise _NoSlot

    async def _check_tenant_limit(self, conn: Any, tenant_id: str, limit: int) -> None:
        """The tenant's running quota, decided as the worker's limit is: side by side claims
        each counted the tenant's running jobs as of their own start, so under the tenant's
        lock a fresh count (this claim included) decides. SQLite's single writer needs none;
        a tenant with no running limit takes no lock (claims of one tenant stay side by side)."""
        if self._db.dialect.xact_lock is None:
            return
        await xact_lock(conn, self._db.dialect, f"tenant:{tenant_id}")
        async with conn.execute(
            "SELECT count(*) FROM jobs WHERE tenant_id = ? AND status = 'running'", (tenant_id,)
        ) as cur:
            running = await cur.fetchone()
        if running is not None and int(running[0]) > limit:
            raise _NoSlot

    async def current_attempt(self, job_id: str) -> Claimed | None:
        """The job's current attempt as its claim returned it (for recovering a lost one)."""
        row = await self._db.fetchone(_CLAIMED_SQL, (job_id,))
        return _claimed(row) if row is not None else None

    async def finish_attempt(
        self,
        job_id: str,
        attempt: int,
        *,
        now: str,
        outcome: AttemptOutcome,
        exit_code: int | None,
        error: ErrorInfo | None,
        result: Any,
        status: JobStatus,
        next_attempt_at: str | None,
        lost: bool = False,
        lapsed_before: str | None = None,
    ) -> bool:
        """False when the attempt is no longer the job's current one: its answer is dropped.
        With `lapsed_before` (a takeover), only while the lease is still lapsed then."""
        final = status is not JobStatus.QUEUED
        params: dict[str, Any] = {
            "status": status.value,
            "result": _json(result) if status is JobStatus.SUCCEEDED else None,
            "error": _json(msgspec.to_builtins(error)) if error and final else None,
            "error_type": error.type if error and final else None,
            "next": next_attempt_at,
            "finished": now if final else None,
            "lost": 1 if lost else 0,
            "id": job_id,
            "attempt": attempt,
            "now": now,
            "outcome": outcome.value,
            "exit_code": exit_code,
            "attempt_error": _json(msgspec.to_builtins(error)) if error else None,
            "lapsed": lapsed_before,
            "delivery": new_id("dlv"),
        }
        update = _FINISH_SQL + ("" if lapsed_before is None else " AND lease_expires_at < :lapsed")
        if self._db.dialect.name == "postgres":
            return await self._finish_one_trip(update, params, final)
        async with self._db.transaction() as conn:
            cur = await conn.execute(update, params)
            if cur.rowcount == 0:
                return False
            if final:
                await _queue_delivery(conn, job_id, now)
            await conn.execute(_FINISH_ATTEMPT_SQL, params)
        return True

    async def _finish_one_trip(self, update: str, params: dict[str, Any], final: bool) -> bool:
        """PostgreSQL: the job's end, its attempt's and its webhook delivery in one statement
        (its own transaction), one round trip instead of five."""
        delivery = (
            ", d AS (INSERT INTO webhook_deliveries (id, job_id, tenant_id, url, status, "
            "attempts, next_attempt_at, created_at) SELECT :delivery, id, tenant_id, "
            "webhook_url, 'pending', 0, :now, :now FROM j WHERE webhook_url IS NOT NULL)"
            if final
            else ""
        )
        sql = (
            f"WITH j AS ({update} RETURNING id, tenant_id, webhook_url), "
            f"a AS ({_FINISH_ATTEMPT_SQL} AND EXISTS (SELECT 1 FROM j)){delivery} "
            "SELECT count(*) FROM j"
        )
        rows = await self._db.write_one(sql, params)
        return bool(rows) and int(rows[0][0]) > 0

    async def set_container(self, job_id: str, attempt: int, container_id: str) -> None:
        """Binds the attempt to its container before the job reaches it, so recovery after a
        crash finds and kills it."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE jobs SET container_id = ? WHERE id = ? AND attempt = ? "
                "AND status = 'running'",
                (container_id, job_id, attempt),
            )

    async def renew_leases(self, owner: str, until: str) -> set[str]:
        """Extends the owner's leases; returns the jobs it still holds (one taken over by
        another process is not among them)."""
        async with (
            self._db.transaction() as conn,
            conn.execute(
                "UPDATE jobs SET lease_expires_at = ? WHERE status = 'running' AND lease_owner = ? "
                "RETURNING id",
                (until, owner),
            ) as cur,
        ):
            rows = await cur.fetchall()
        return {str(r[0]) for r in rows}

    async def running(
        self, *, expired_before: str | None = None, not_owner: str | None = None
    ) -> list[RunningRow]:
        """Running jobs; with filters, those whose lease lapsed or whose owner is gone."""
        sql = (
            "SELECT id, attempt, container_id, cancel_requested FROM jobs WHERE status = 'running'"
        )
        params: list[Any] = []
        if expired_before is not None and not_owner is not None:
            sql += " AND (lease_expires_at < ? OR lease_owner IS DISTINCT FROM ?)"
            params += [expired_before, not_owner]
        elif expired_before is not None:
            sql += " AND lease_expires_at < ?"
            params.append(expired_before)
        rows = await self._db.fetchall(sql, params)
        return [
            RunningRow(r["id"], r["attempt"], r["container_id"], bool(r["cancel_requested"]))
            for r in rows
        ]

    async def cancel(self, tenant_id: str, job_id: str, now: str) -> JobStatus | None:
        """Cancels a queued job at once; marks a running one for its runner to kill.
        Returns the status the job had, or None when unknown."""
        error = _json({"type": "cancelled", "message": "cancelled by a user"})
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT status FROM jobs WHERE id = ? AND tenant_id = ?"
                + self._db.dialect.for_update,
                (job_id, tenant_id),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            status = JobStatus(row[0])
            if status is JobStatus.QUEUED:
                await conn.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ?, next_attempt_at = NULL, "
                    "error = ?, error_type = 'cancelled' WHERE id = ?",
                    (now, error, job_id),
                )
                await _queue_delivery(conn, job_id, now)
            elif status is JobStatus.RUNNING:
                await conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return status

    async def queue_stats(self) -> dict[str, Any]:
        rows = await self._db.fetchall("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        oldest = await self._db.fetchone(
            "SELECT min(coalesce(next_attempt_at, created_at)) FROM jobs WHERE status = 'queued'"
        )
        return {
            "by_status": {r["status"]: r["n"] for r in rows},
            "oldest_queued": oldest[0] if oldest else None,
        }

    async def counts_by_status_runtime(self) -> list[tuple[str, str, int]]:
        """(status, runtime, jobs) over every tenant, for the metrics endpoint."""
        rows = await self._db.fetchall(
            "SELECT j.status, w.runtime, sum(j.n) FROM ("
            "  SELECT worker_id, status, count(*) AS n FROM jobs GROUP BY worker_id, status"
            ") j JOIN workers w ON w.id = j.worker_id GROUP BY j.status, w.runtime"
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


async def _queue_delivery(conn: Any, job_id: str, now: str) -> None:
    """The job's webhook delivery, if it names a URL, in the transaction that ends it."""
    await conn.execute(QUEUE_DELIVERY_SQL, (new_id("dlv"), now, now, job_id))


async def _check_queued_quota(conn: Any, tenant_id: str, default_max: int) -> None:
    async with conn.execute(
        "SELECT (SELECT count(*) FROM jobs WHERE status = 'queued' AND tenant_id = ?), "
        "(SELECT max_queued FROM tenant_quotas WHERE tenant_id = ?)",
        (tenant_id, tenant_id),
    ) as cur:
        row = await cur.fetchone()
    queued, limit = int(row[0]), row[1] if row[1] is not None else default_max
    if queued >= limit:
        raise QuotaExceeded(
            f"tenant {tenant_id} has {queued} queued jobs, its quota is {limit}",
            details={"quota": "max_queued", "limit": limit, "queued": queued},
        )


async def _load(conn: Any, job_id: str) -> Job:
    async with conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)) as cur:
        row = await cur.fetchone()
    async with conn.execute(
        "SELECT number, started_at, finished_at, outcome, exit_code, error FROM job_attempts "
        "WHERE job_id = ? ORDER BY number",
        (job_id,),
    ) as cur:
        attempts = [_attempt(a) for a in await cur.fetchall()]
    return _job(row, attempts)
