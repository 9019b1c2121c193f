"""Versioned schema. Each entry runs once, in order, inside one transaction; the applied
version is kept in `PRAGMA user_version`, so a second start on the same file changes nothing.
Append new migrations; never edit an applied one."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: workers, their versions, and name search
    """
    CREATE TABLE workers (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        runtime TEXT NOT NULL,
        entrypoint TEXT NOT NULL,
        source_code TEXT,
        config TEXT NOT NULL,
        secrets TEXT NOT NULL,
        timeout_seconds INTEGER NOT NULL,
        max_retries INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL,
        cpus REAL NOT NULL,
        network TEXT NOT NULL,
        max_concurrency INTEGER,
        status TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX workers_tenant ON workers (tenant_id, seq);
    CREATE INDEX workers_tenant_status ON workers (tenant_id, status, seq);
    CREATE INDEX workers_tenant_runtime ON workers (tenant_id, runtime, status, seq);
    -- trigram index: case-insensitive substring search on names without scanning the table
    CREATE VIRTUAL TABLE workers_fts USING fts5 (
        name, content='workers', content_rowid='seq', tokenize='trigram'
    );
    CREATE TRIGGER workers_fts_insert AFTER INSERT ON workers BEGIN
        INSERT INTO workers_fts (rowid, name) VALUES (new.seq, new.name);
    END;
    CREATE TRIGGER workers_fts_update AFTER UPDATE OF name ON workers BEGIN
        INSERT INTO workers_fts (workers_fts, rowid, name) VALUES ('delete', old.seq, old.name);
        INSERT INTO workers_fts (rowid, name) VALUES (new.seq, new.name);
    END;
    CREATE TABLE worker_versions (
        worker_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        source_digest TEXT NOT NULL,
        source_code TEXT,
        entrypoint TEXT NOT NULL,
        image TEXT,
        status TEXT NOT NULL,
        build_log TEXT NOT NULL DEFAULT '',
        error TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (worker_id, version)
    );
    """,
    # 2: jobs, their attempts and logs (the durable queue)
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        worker_id TEXT NOT NULL,
        worker_version INTEGER NOT NULL,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        result TEXT,
        error TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        schedule_id TEXT,
        idempotency_key TEXT,
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        next_attempt_at TEXT,
        lease_owner TEXT,
        lease_expires_at TEXT,
        container_id TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        lost_count INTEGER NOT NULL DEFAULT 0,
        log_bytes INTEGER NOT NULL DEFAULT 0,
        log_truncated INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_claim ON jobs (status, next_attempt_at, seq);
    CREATE INDEX jobs_tenant ON jobs (tenant_id, seq);
    CREATE INDEX jobs_tenant_status ON jobs (tenant_id, status, seq);
    CREATE INDEX jobs_worker ON jobs (worker_id, seq);
    CREATE INDEX jobs_worker_status ON jobs (worker_id, status);
    CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant_id, worker_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE TABLE job_attempts (
        job_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT,
        exit_code INTEGER,
        error TEXT,
        container_id TEXT,
        PRIMARY KEY (job_id, number)
    );
    CREATE TABLE job_logs (
        seq INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        ts TEXT NOT NULL,
        stream TEXT NOT NULL,
        line TEXT NOT NULL
    );
    CREATE INDEX job_logs_job ON job_logs (job_id, seq);
    """,
    # 3: the secrets vault, cron schedules and their runs, bundle versions
    """
    CREATE TABLE secrets (
        tenant_id TEXT NOT NULL,
        name TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        nonce BLOB NOT NULL,
        key_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (tenant_id, name)
    );
    CREATE INDEX secrets_key_version ON secrets (key_version);
    CREATE TABLE schedules (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        worker_id TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        input TEXT NOT NULL,
        next_run_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE INDEX schedules_worker ON schedules (tenant_id, worker_id, seq);
    CREATE INDEX schedules_due ON schedules (next_run_at);
    -- one row per fired slot: the unique key makes a slot fire at most once, even across restarts
    CREATE TABLE schedule_runs (
        seq INTEGER PRIMARY KEY,
        schedule_id TEXT NOT NULL,
        slot TEXT NOT NULL,
        status TEXT NOT NULL,
        job_id TEXT,
        reason TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (schedule_id, slot)
    );
    CREATE INDEX schedule_runs_pending ON schedule_runs (status) WHERE status = 'pending';
    ALTER TABLE worker_versions ADD COLUMN bundle INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE worker_versions ADD COLUMN finished_at TEXT;
    """,
    # 4: each job keeps the worker's settings it was queued with; older jobs get their
    # worker's current settings, the closest truth left
    """
    ALTER TABLE jobs ADD COLUMN run TEXT;
    UPDATE jobs SET run = (
        SELECT json_object(
            'runtime', w.runtime, 'entrypoint', coalesce(v.entrypoint, w.entrypoint),
            'image', v.image, 'config', json(w.config), 'secrets', json(w.secrets),
            'timeout_seconds', w.timeout_seconds, 'max_retries', jobs.max_retries,
            'memory_mb', w.memory_mb, 'cpus', w.cpus, 'network', w.network)
        FROM workers w LEFT JOIN worker_versions v
            ON v.worker_id = w.id AND v.version = jobs.worker_version
        WHERE w.id = jobs.worker_id
    );
    """,
    # 5: a worker's optional JSON Schema of its input (its MCP tool schema); NULL: any object
    """
    ALTER TABLE workers ADD COLUMN input_schema TEXT;
    """,
    # 6: a worker's isolation (README: Security model); every existing worker keeps runc
    """
    ALTER TABLE workers ADD COLUMN isolation TEXT NOT NULL DEFAULT 'container';
    """,
    # 7: the claim takes the oldest due job straight off an index, in its own order, however
    # many jobs are queued (before: a sort of every queued row on each claim)
    """
    CREATE INDEX jobs_due ON jobs (status, (coalesce(next_attempt_at, created_at)), seq);
    """,
    # 8: fair share and quotas. Per-tenant quotas set by an operator (NULL: the
    # AVA_TENANT_MAX_* default); when each tenant was last served by the claim (a counter, so
    # a tenant that just got a slot yields the next one to another); the claim counts running
    # jobs per tenant, hence the index
    """
    CREATE TABLE tenant_quotas (
        tenant_id TEXT PRIMARY KEY,
        max_running INTEGER,
        max_queued INTEGER,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE tenant_claims (
        tenant_id TEXT PRIMARY KEY,
        last_claim INTEGER NOT NULL
    );
    CREATE INDEX jobs_status_tenant ON jobs (status, tenant_id);
    """,
    # 9: re-runs and completion webhooks. A job records the job it re-runs and its error's
    # type (a column, so filtering on it needs no JSON function); the webhook URL a worker
    # or a single trigger names; each tenant's signing secret (sealed by the vault); and the
    # deliveries, retried from the store so a restart loses none
    """
    ALTER TABLE jobs ADD COLUMN rerun_of TEXT;
    ALTER TABLE jobs ADD COLUMN error_type TEXT;
    ALTER TABLE jobs ADD COLUMN webhook_url TEXT;
    ALTER TABLE workers ADD COLUMN webhook_url TEXT;
    UPDATE jobs SET error_type = json_extract(error, '$.type') WHERE error IS NOT NULL;
    CREATE INDEX jobs_tenant_error_type ON jobs (tenant_id, error_type, seq);
    CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at);
    CREATE TABLE webhook_secrets (
        tenant_id TEXT PRIMARY KEY,
        ciphertext BLOB NOT NULL,
        nonce BLOB NOT NULL,
        key_version TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE webhook_deliveries (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        job_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        url TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_status_code INTEGER,
        last_error TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT
    );
    CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, seq);
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
    CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        at TEXT NOT NULL,
        status_code INTEGER,
        error TEXT,
        duration_ms INTEGER NOT NULL,
        PRIMARY KEY (delivery_id, number)
    );
    """,
    # 10: the claim's fair share reads each tenant's first due job off an index (migration
    # 8's order starts with per-tenant counts, which no index holds: without this, every
    # claim sorted all due rows); its prefix serves what jobs_status_tenant did, one index
    # fewer for every status change to maintain
    """
    CREATE INDEX jobs_tenant_due ON jobs
        (status, tenant_id, (coalesce(next_attempt_at, created_at)), seq);
    CREATE INDEX tenant_claims_order ON tenant_claims (last_claim);
    DROP INDEX jobs_status_tenant;
    """,
    # 11: beside other processes, a build in progress is held by its process under a lease
    # (renewed while it runs): a lapsed one is a dead process's, and another fails it
    """
    ALTER TABLE worker_versions ADD COLUMN build_owner TEXT;
    ALTER TABLE worker_versions ADD COLUMN build_lease_until TEXT;
    CREATE INDEX worker_versions_status ON worker_versions (status);
    """,
    # 12: jobs queued before a worker's isolation existed get its default in their settings,
    # so every stored job is whole as the API serves it (job lists are served as stored, #16)
    """
    UPDATE jobs SET run = json_set(run, '$.isolation', 'container')
        WHERE run IS NOT NULL AND json_extract(run, '$.isolation') IS NULL;
    """,
    # 13: each job and worker keeps its JSON as served, rewritten by triggers that
    # store/documents.py installs at every open from the code's field lists (#16)
    """
    ALTER TABLE jobs ADD COLUMN doc TEXT;
    ALTER TABLE workers ADD COLUMN doc TEXT;
    """,
]
