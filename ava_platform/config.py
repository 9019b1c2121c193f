"""Settings from `AVA_*` environment variables, read once at start-up.

A missing or malformed secret stops the server with a one-line reason (`ConfigError`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path

import msgspec

from ava_platform.errors import ConfigError

MIN_INTERNAL_SECRET_LEN = 16
_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


class PoolSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The prewarmed-container pool (README: warm starts); AVA_WARM_POOL=0 turns it off.
    The defaults let one shape meet a burst with a full pool (8 idle containers hold ~15 MB
    each: their memory limits are what max_idle_memory_mb caps)."""

    enabled: bool = True
    min_per_shape: int = 0
    max_per_shape: int = 8
    idle_ttl_s: float = 60.0
    max_idle: int = 8
    max_idle_memory_mb: int = 2048


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    internal_secret: str
    secret_key: bytes
    db_path: Path = Path(".data/ava.db")
    # AVA_DATABASE_URL=postgresql://...: the shared PostgreSQL store of a multi-process
    # platform; unset, the embedded SQLite file at db_path
    database_url: str | None = None
    # AVA_ROLE / `ava serve --role`: all (API + scheduler), api, or scheduler
    role: str = "all"
    max_concurrent_jobs: int = 4
    log_cap_bytes: int = 10 * 1024 * 1024
    job_poll_interval_s: float = 0.5
    lease_s: float = 30.0
    max_worker_lost: int = 3
    retry_base_s: float = 1.0
    image_retention: int = 5
    ca_bundle: Path | None = None
    docker_host: str | None = None
    warm: PoolSettings = PoolSettings()
    # older keys that still decrypt (AVA_SECRET_KEY="new,old"); secret_key encrypts
    previous_secret_keys: tuple[bytes, ...] = ()
    build_concurrency: int = 1
    # where attempts run: "local" (this machine's engine) or "swarm" (services of the swarm
    # whose manager is docker_host; README: the swarm executor)
    executor: str = "local"
    # placement constraints of every swarm task, e.g. ("node.role==worker",)
    swarm_constraints: tuple[str, ...] = ()
    # the swarm network egress tasks join, firewalled by the operator on every node, or
    # "bridge"; unset, egress jobs are refused on swarm (executor/swarm_egress.py)
    swarm_egress_network: str | None = None
    # private IPv4 ranges egress jobs may reach on purpose (README: Security model)
    egress_allow_cidrs: tuple[str, ...] = ()
    # per-tenant quotas (README: quotas); an operator overrides them per tenant.
    # 0 running: no limit of its own, only AVA_MAX_CONCURRENT_JOBS
    tenant_max_running: int = 0
    tenant_max_queued: int = 10_000
    # completion webhooks (README: completion webhooks)
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 8
    webhook_retry_base_s: float = 2.0
    webhook_timeout_s: float = 10.0


def _decode_key(raw: str) -> bytes:
    # urlsafe_b64decode silently drops characters outside the alphabet; refuse them instead
    if not _URLSAFE_B64.match(raw):
        raise ConfigError("AVA_SECRET_KEY is not urlsafe base64")
    try:
        key = base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("AVA_SECRET_KEY is not urlsafe base64") from exc
    if len(key) != 32:
        raise ConfigError(f"AVA_SECRET_KEY must decode to 32 bytes, got {len(key)}")
    return key


def decode_keyring(raw: str) -> list[bytes]:
    """`KEY` or `NEWKEY,OLDKEY,...`: the first key encrypts, every key decrypts."""
    return [_decode_key(part.strip()) for part in raw.split(",")]


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not value >= 0:
        raise ConfigError(f"{name} must be >= 0, got {raw!r}")
    return value


EXECUTORS = ("local", "swarm")


def _pool(env: Mapping[str, str]) -> PoolSettings:
    d = PoolSettings()
    return PoolSettings(
        enabled=_int(env, "AVA_WARM_POOL", int(d.enabled), 0) > 0,
        min_per_shape=_int(env, "AVA_WARM_MIN", d.min_per_shape, 0),
        max_per_shape=_int(env, "AVA_WARM_MAX", d.max_per_shape, 0),
        idle_ttl_s=max(10.0, _float(env, "AVA_WARM_IDLE_TTL_S", d.idle_ttl_s)),
        max_idle=_int(env, "AVA_WARM_MAX_IDLE", d.max_idle, 0),
        max_idle_memory_mb=_int(env, "AVA_WARM_MAX_IDLE_MEMORY_MB", d.max_idle_memory_mb, 0),
    )


def _executor(env: Mapping[str, str]) -> str:
    name = (env.get("AVA_EXECUTOR") or "local").strip().lower()
    if name not in EXECUTORS:
        raise ConfigError(f"AVA_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {name!r}")
    return name


def _constraints(raw: str) -> tuple[str, ...]:
    """`node.role==worker,node.labels.pool==agents`: every one must hold."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _cidrs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    out = []
    for part in (p.strip() for p in env.get(name, "").split(",")):
        if part:
            try:
                out.append(str(ipaddress.IPv4Network(part, strict=False)))
            except ValueError as exc:
                raise ConfigError(f"{name}: {part!r} is not an IPv4 network") from exc
    return tuple(out)


def load_settings(env: Mapping[str, str] | None = None, *, db_path: Path | None = None) -> Settings:
    env = os.environ if env is None else env
    secret = env.get("AVA_INTERNAL_SECRET", "")
    if not secret:
        raise ConfigError("AVA_INTERNAL_SECRET is not set")
    if len(secret) < MIN_INTERNAL_SECRET_LEN:
        raise ConfigError(f"AVA_INTERNAL_SECRET must be at least {MIN_INTERNAL_SECRET_LEN} chars")
    raw_key = env.get("AVA_SECRET_KEY", "")
    if not raw_key:
        raise ConfigError("AVA_SECRET_KEY is not set (32 random bytes, urlsafe base64)")
    ca = env.get("AVA_CA_BUNDLE")
    keyring = decode_keyring(raw_key)
    return Settings(
        internal_secret=secret,
        secret_key=keyring[0],
        previous_secret_keys=tuple(keyring[1:]),
        build_concurrency=_int(env, "AVA_BUILD_CONCURRENCY", 1, 1),
        egress_allow_cidrs=_cidrs(env, "AVA_EGRESS_ALLOW_CIDRS"),
        db_path=db_path or Path(env.get("AVA_DB_PATH") or ".data/ava.db"),
        database_url=_database_url(env),
        role=_role(env),
        max_concurrent_jobs=_int(env, "AVA_MAX_CONCURRENT_JOBS", 4, 1),
        log_cap_bytes=_int(env, "AVA_LOG_CAP_BYTES", 10 * 1024 * 1024, 1024),
        image_retention=_int(env, "AVA_IMAGE_RETENTION", 5, 1),
        retry_base_s=_float(env, "AVA_RETRY_BASE_S", 1.0),
        max_worker_lost=_int(env, "AVA_MAX_WORKER_LOST", 3, 1),
        lease_s=_float(env, "AVA_LEASE_S", 30.0),
        job_poll_interval_s=_float(env, "AVA_POLL_INTERVAL_S", 0.5),
        ca_bundle=Path(ca) if ca else None,
        docker_host=env.get("AVA_DOCKER_HOST") or env.get("DOCKER_HOST") or None,
        warm=_pool(env),
        executor=_executor(env),
        swarm_constraints=_constraints(env.get("AVA_SWARM_CONSTRAINTS", "")),
        swarm_egress_network=env.get("AVA_SWARM_EGRESS_NETWORK", "").strip() or None,
        tenant_max_running=_int(env, "AVA_TENANT_MAX_RUNNING", 0, 0),
        tenant_max_queued=_int(env, "AVA_TENANT_MAX_QUEUED", 10_000, 1),
        webhook_allow_private=_int(env, "AVA_WEBHOOK_ALLOW_PRIVATE", 0, 0) > 0,
        webhook_max_attempts=_int(env, "AVA_WEBHOOK_MAX_ATTEMPTS", 8, 1),
        webhook_retry_base_s=_float(env, "AVA_WEBHOOK_RETRY_BASE_S", 2.0),
        webhook_timeout_s=max(0.5, _float(env, "AVA_WEBHOOK_TIMEOUT_S", 10.0)),
    )


ROLES = ("all", "api", "scheduler")


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("AVA_DATABASE_URL") or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError("AVA_DATABASE_URL must be a postgresql:// URL (unset: SQLite)")
    return url


def _role(env: Mapping[str, str]) -> str:
    role = env.get("AVA_ROLE") or "all"
    if role not in ROLES:
        raise ConfigError(f"AVA_ROLE must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def generate_secret_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()
