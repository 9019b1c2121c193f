"""Domain and wire Structs. Pure: no I/O, no framework imports.

Request Structs (`WorkerCreate`, `WorkerPatch`, `JobCreate`) forbid unknown fields, so a client
can never mass-assign `id`, `tenant_id`, `version` or timestamps.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MAX_TIMEOUT_S = 3600
MAX_RETRIES = 5


class Runtime(StrEnum):
    NODEJS = "nodejs"  # Node.js 18+, CommonJS or ESM handler
    PYTHON = "python"  # CPython 3.11, async or plain def handler
    DENO = "deno"  # Deno 2, TypeScript default export
    SHELL = "shell"  # bash script, result written to $AVA_RESULT
    WASM = "wasm"  # WASI preview 1 module run by wasmtime


DEFAULT_ENTRYPOINT: dict[Runtime, str] = {
    Runtime.NODEJS: "index.js",
    Runtime.PYTHON: "main.py",
    Runtime.DENO: "main.ts",
    Runtime.SHELL: "main.sh",
    Runtime.WASM: "main.wasm",
}


class WorkerStatus(StrEnum):
    ACTIVE = "active"  # accepts new jobs
    PAUSED = "paused"  # refuses new jobs; running ones finish; schedules skip
    DEPRECATED = "deprecated"  # soft-deleted; read-only forever


class PatchableStatus(StrEnum):
    ACTIVE = "active"  # resume
    PAUSED = "paused"  # stop queuing


class Network(StrEnum):
    EGRESS = "egress"  # bridge network with outbound access
    NONE = "none"  # no network interface but loopback


class Isolation(StrEnum):
    CONTAINER = "container"  # the engine's default runtime (runc), hardened
    GVISOR = "gvisor"  # gVisor's runsc: a user-space kernel between the job and the host


class Role(StrEnum):
    SYSTEM_ADMIN = "tenant-system-admin"  # everything
    ADMIN = "tenant-admin"  # everything
    DEVELOPER = "tenant-developer"  # everything but secret values
    OPERATOR = "tenant-operator"  # read, trigger and cancel
    VIEWER = "tenant-viewer"  # read only


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for a slot (or for its next attempt)
    RUNNING = "running"  # an attempt's container is alive
    SUCCEEDED = "succeeded"  # the handler returned a JSON result
    FAILED = "failed"  # the last attempt failed
    TIMED_OUT = "timed_out"  # the last attempt hit timeout_seconds
    CANCELLED = "cancelled"  # cancelled by a user


FINISHED = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.TIMED_OUT, JobStatus.CANCELLED}
)


class AttemptOutcome(StrEnum):
    """How one attempt ended: stored on the attempt, shown in the API, and what the retry
    policy turns into the job's status."""

    SUCCEEDED = "succeeded"  # the handler returned a JSON result
    FAILED = "failed"  # the handler raised, exited non-zero or gave no result
    TIMED_OUT = "timed_out"  # killed at timeout_seconds
    CANCELLED = "cancelled"  # killed because a user cancelled the job
    PLATFORM = "platform"  # the engine or image failed us, not the handler
    WORKER_LOST = "worker_lost"  # the platform died (or lost its lease) while it ran


class Trigger(StrEnum):
    API = "api"  # POST /workers/{id}/jobs
    SCHEDULE = "schedule"  # a cron schedule fired
    MCP = "mcp"  # an MCP client called the worker as a tool (tools/call)


ConfigValue = str | int | float | bool
Name = Annotated[str, Meta(min_length=1, max_length=200, description="Human-readable worker name.")]
Description = Annotated[str, Meta(max_length=4000, description="What this worker does.")]
Entrypoint = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=255,
        description='File path within source bundle (e.g. "index.js"). Defaults to runtime convention.',
    ),
]
SourceCode = Annotated[
    str,
    Meta(
        max_length=1_048_576,
        description="Inline source code (for simple workers). For complex workers use source "
        "bundles via the deploy endpoint. wasm: base64 of the module.",
    ),
]
Config = Annotated[
    dict[str, ConfigValue],
    Meta(description="Non-secret config key/value pairs injected as environment variables."),
]
SecretNames = Annotated[
    list[str],
    Meta(
        max_length=100,
        description="Secret key names to inject at runtime. Values are set separately via the "
        "secrets vault.",
    ),
]
TimeoutSeconds = Annotated[
    int, Meta(ge=1, le=MAX_TIMEOUT_S, description="Max execution time. Default 300, max 3600.")
]
MaxRetries = Annotated[
    int, Meta(ge=0, le=MAX_RETRIES, description="Auto-retry on failure. Default 0, max 5.")
]
MemoryMb = Annotated[int, Meta(ge=16, le=8192, description="Memory limit. Default 256, 16..8192.")]
Cpus = Annotated[float, Meta(ge=0.1, description="CPU limit. Default 1.0, 0.1..host cores.")]
IsolationField = Annotated[
    Isolation,
    Meta(description="container (default) | gvisor: the job's kernel is gVisor's (runsc)."),
]
MaxConcurrency = Annotated[
    int, Meta(ge=1, le=10_000, description="Jobs of this worker running at once; null: unlimited.")
]
InputSchema = Annotated[
    dict[str, Any],
    Meta(
        description='JSON Schema of the job input, an object schema ({"type": "object", ...}); '
        "it is the worker's MCP tool input schema, and tool calls are checked against it. "
        "null: any JSON object."
    ),
]


WebhookUrl = Annotated[
    str,
    Meta(
        min_length=8,
        max_length=2048,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
        description="http(s) URL POSTed the finished job (README: completion webhooks).",
    ),
]


class WorkerCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    runtime: Annotated[Runtime, Meta(description="nodejs | python | deno | shell | wasm")]
    description: Description = ""
    entrypoint: Entrypoint | None = None
    source_code: SourceCode | None = None
    config: Config = msgspec.field(default_factory=dict)
    secrets: SecretNames = msgspec.field(default_factory=list)
    timeout_seconds: TimeoutSeconds = 300
    max_retries: MaxRetries = 0
    memory_mb: MemoryMb = 256
    cpus: Cpus = 1.0
    network: Network = Network.EGRESS
    isolation: IsolationField = Isolation.CONTAINER
    max_concurrency: MaxConcurrency | None = None
    input_schema: InputSchema | None = None
    webhook_url: WebhookUrl | None = None


class WorkerPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    status: (
        Annotated[
            PatchableStatus, Meta(description="active | paused — change without modifying code.")
        ]
        | UnsetType
    ) = UNSET
    source_code: SourceCode | UnsetType = UNSET
    entrypoint: Entrypoint | UnsetType = UNSET
    config: (
        Annotated[
            dict[str, ConfigValue | None],
            Meta(description="Merged into existing config; a key set to null is removed."),
        ]
        | UnsetType
    ) = UNSET
    secrets: SecretNames | UnsetType = UNSET
    timeout_seconds: TimeoutSeconds | UnsetType = UNSET
    max_retries: MaxRetries | UnsetType = UNSET
    memory_mb: MemoryMb | UnsetType = UNSET
    cpus: Cpus | UnsetType = UNSET
    network: Network | UnsetType = UNSET
    isolation: IsolationField | UnsetType = UNSET
    max_concurrency: MaxConcurrency | UnsetType | None = UNSET
    input_schema: InputSchema | UnsetType | None = UNSET
    webhook_url: WebhookUrl | UnsetType | None = UNSET


class Worker(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    name: str
    description: str
    runtime: Runtime
    entrypoint: str
    source_code: str | None
    config: dict[str, ConfigValue]
    secrets: list[str]
    timeout_seconds: int
    max_retries: int
    memory_mb: int
    cpus: float
    network: Network
    isolation: Isolation = Isolation.CONTAINER
    max_concurrency: int | None
    status: WorkerStatus
    version: int
    created_at: str
    updated_at: str
    created_by: str
    input_schema: dict[str, Any] | None = None
    webhook_url: str | None = None


class PageMeta(msgspec.Struct, frozen=True):
    page: int
    per_page: int
    total: int


class WorkerPage(msgspec.Struct, frozen=True):
    data: list[Worker]
    meta: PageMeta


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody


class ErrorInfo(msgspec.Struct, frozen=True):
    type: str
    message: str


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    started_at: str
    finished_at: str | None = None
    outcome: AttemptOutcome | None = None
    exit_code: int | None = None
    error: ErrorInfo | None = None


class RunSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The worker as it stood when the job was queued: every attempt of the job, retries
    included, runs with exactly these (the code is the pinned `worker_version`'s). Secret
    values are not here: they are read when each attempt starts, so a rotation applies."""

    runtime: Runtime
    entrypoint: str
    image: str | None = None  # a deployed version's own image; None: the runtime's image
    config: dict[str, ConfigValue] = msgspec.field(default_factory=dict)
    secrets: list[str] = msgspec.field(default_factory=list)  # names only
    timeout_seconds: int
    max_retries: int
    memory_mb: int
    cpus: float
    network: Network
    isolation: Isolation = Isolation.CONTAINER  # jobs queued before the field: runc


class JobCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    input: Annotated[Any, Meta(description="The handler's input (any JSON, ≤ 1 MiB).")] = (
        msgspec.field(default_factory=dict)
    )
    webhook_url: WebhookUrl | None = None  # this job only; else the worker's


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    worker_id: str
    worker_version: int
    status: JobStatus
    input: Any
    result: Any = None
    error: ErrorInfo | None = None
    attempt: int = 0
    max_retries: int = 0
    attempts: list[Attempt] = msgspec.field(default_factory=list)
    trigger: Trigger = Trigger.API
    schedule_id: str | None = None
    next_attempt_at: str | None = None
    run: RunSettings  # the worker's settings this job runs with, fixed at trigger
    created_by: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    rerun_of: str | None = None  # the finished job this one re-runs
    webhook_url: str | None = None  # where its end is POSTed (the trigger's, else the worker's)


class JobPage(msgspec.Struct, frozen=True):
    data: list[Job]
    meta: PageMeta


class LogLine(msgspec.Struct, frozen=True):
    seq: int
    ts: str
    stream: str
    attempt: int
    line: str


class WorkerVersion(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    version: int
    source_digest: str
    entrypoint: str
    status: str
    image: str | None = None
    source_code: str | None = None
    error: str | None = None
    created_at: str
    created_by: str


IMAGE_NAMESPACE_ENV = "AVA_IMAGE_NAMESPACE"


def image_namespace() -> str:
    """The repository namespace of the runtime images: `$AVA_IMAGE_NAMESPACE`, default `ava`
    (tests use their own, so they never replace the images a user's platform runs on)."""
    import os

    return os.environ.get(IMAGE_NAMESPACE_ENV) or "ava"


def runtime_image(runtime: Runtime) -> str:
    from ava_platform import __version__

    return f"{image_namespace()}/runtime-{runtime.value}:{__version__}"


# -- secrets, versions, schedules ----------------------------------------------------------------

SecretValue = Annotated[
    str,
    Meta(
        min_length=4,
        max_length=65_536,
        description="The secret value (4..65536 chars; shorter values could not be redacted "
        "from job logs without masking ordinary words).",
    ),
]


class SecretPut(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: SecretValue


class SecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    created_at: str
    updated_at: str


class SecretPage(msgspec.Struct, frozen=True):
    data: list[SecretInfo]
    meta: PageMeta


class VersionStatus(StrEnum):
    BUILDING = "building"  # the bundle's image is being built
    READY = "ready"  # runnable: inline source, or a built image
    FAILED = "failed"  # the build failed; see error and the build log
    PRUNED = "pruned"  # its image was removed by the retention policy; cannot be rolled back to
    EMPTY = "empty"  # inline, with no source: nothing to run; cannot be rolled back to


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    version: int
    kind: Annotated[str, Meta(description="inline | bundle")]
    source_digest: str
    entrypoint: str
    status: VersionStatus
    image: str | None = None
    error: str | None = None
    current: bool = False
    created_at: str
    created_by: str
    finished_at: str | None = None


class VersionPage(msgspec.Struct, frozen=True):
    data: list[VersionInfo]
    meta: PageMeta


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    version: Annotated[
        int,
        Meta(ge=1, description="An earlier ready version of this worker (not an empty one)."),
    ]


class ScheduleCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cron: Annotated[
        str, Meta(min_length=9, max_length=200, description='5-field cron, e.g. "*/5 * * * *".')
    ]
    timezone: Annotated[
        str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. Europe/Paris.")
    ] = "UTC"
    input: Annotated[Any, Meta(description="The input of every job it queues (≤ 1 MiB).")] = (
        msgspec.field(default_factory=dict)
    )


class ScheduleRunStatus(StrEnum):
    PENDING = "pending"  # the slot is claimed; its job is being queued
    QUEUED = "queued"  # a job was queued for the slot
    SKIPPED = "skipped"  # the worker was paused (or deprecated, or had no source)
    FAILED = "failed"  # the job could not be queued (e.g. the worker is gone)


class ScheduleRun(msgspec.Struct, frozen=True, kw_only=True):
    schedule_id: str
    slot: str
    status: ScheduleRunStatus
    job_id: str | None = None
    reason: str | None = None
    created_at: str


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    worker_id: str
    cron: str
    timezone: str
    input: Any
    next_run_at: str
    last_run: ScheduleRun | None = None
    created_at: str
    created_by: str


class SchedulePage(msgspec.Struct, frozen=True):
    data: list[Schedule]
    meta: PageMeta


class ScheduleRunPage(msgspec.Struct, frozen=True):
    data: list[ScheduleRun]
    meta: PageMeta


QuotaLimit = Annotated[
    int, Meta(ge=1, le=10_000_000, description="A limit for this tenant; null: the default.")
]


class QuotaPut(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_running: QuotaLimit | None = None
    max_queued: QuotaLimit | None = None


class Quota(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    max_running: int | None  # as the operator set it; null: the default applies
    max_queued: int | None
    effective_max_running: int  # what the scheduler and the trigger enforce now
    effective_max_queued: int
    queued: int
    running: int
    updated_at: str | None = None
    updated_by: str | None = None


class WebhookSecret(msgspec.Struct, frozen=True):
    secret: str


class DeliveryAttemptInfo(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    at: str
    response_status: int | None  # the receiver's HTTP status; null: none came (see error)
    error: str | None
    duration_ms: int


class DeliveryInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    job_id: str
    url: str
    status: str  # pending (next attempt at next_attempt_at) | delivered | failed (gave up)
    attempts: list[DeliveryAttemptInfo]
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None


class DeliveryList(msgspec.Struct, frozen=True):
    data: list[DeliveryInfo]
