"""Worker use cases: validation, defaults, tenancy and the status rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import UNSET

from ava_platform.clock import Clock, iso
from ava_platform.errors import Conflict, NotFound
from ava_platform.ids import new_id
from ava_platform.models import (
    DEFAULT_ENTRYPOINT,
    Isolation,
    Runtime,
    Worker,
    WorkerCreate,
    WorkerPatch,
    WorkerStatus,
    WorkerVersion,
)
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.sandbox import OpenSandbox, Sandbox, isolation_problem
from ava_platform.service.validation import (
    Problems,
    check_config,
    check_cpus,
    check_entrypoint,
    check_input_schema,
    check_name,
    check_secrets,
    check_source,
)
from ava_platform.store.json_rows import decode_worker
from ava_platform.store.workers import Change, VersionStore, WorkerStore

_SOURCE_FIELDS = ("source_code", "entrypoint")
# what an MCP client sees of a worker as a tool: a change to one is announced
TOOL_FIELDS = frozenset({"name", "description", "status", "input_schema"})


@dataclass(frozen=True)
class WorkerQuery:
    status: WorkerStatus | None = None
    runtime: Runtime | None = None
    q: str | None = None
    page: int = 1
    per_page: int = 20


UrlCheck = Callable[[str], Awaitable[None]]


class WorkerService:
    def __init__(
        self,
        store: WorkerStore,
        versions: VersionStore,
        clock: Clock,
        *,
        sandbox: Sandbox | None = None,
        check_webhook_url: UrlCheck | None = None,
    ) -> None:
        self._store = store
        self._versions = versions
        self._clock = clock
        self._sandbox = sandbox or OpenSandbox()
        self._listeners: list[Callable[[str], None]] = []
        self._check_url = check_webhook_url

    def on_change(self, listener: Callable[[str], None]) -> None:
        """`listener(tenant_id)` runs after a worker of that tenant is created, deprecated, or
        changed in a field its MCP tool shows (TOOL_FIELDS)."""
        self._listeners.append(listener)

    def _changed(self, tenant_id: str) -> None:
        for listener in self._listeners:
            listener(tenant_id)

    async def _check_webhook(self, url: str | None) -> None:
        if url is not None and self._check_url is not None:
            await self._check_url(url)

    async def create(self, who: Principal, data: WorkerCreate) -> Worker:
        who.require(Permission.MANAGE)
        entrypoint = data.entrypoint or DEFAULT_ENTRYPOINT[data.runtime]
        problems = Problems()
        check_name(problems, data.name)
        check_config(problems, data.config)
        check_secrets(problems, data.secrets)
        check_entrypoint(problems, entrypoint)
        check_cpus(problems, data.cpus)
        check_source(problems, data.runtime, data.source_code)
        check_input_schema(problems, data.input_schema)
        await self._check_isolation(problems, data.isolation)
        problems.raise_if_any()
        await self._check_webhook(data.webhook_url)
        now = iso(self._clock.now())
        worker = Worker(
            id=new_id("wkr"),
            tenant_id=who.tenant_id,
            name=data.name,
            description=data.description,
            runtime=data.runtime,
            entrypoint=entrypoint,
            source_code=data.source_code,
            config=data.config,
            secrets=data.secrets,
            timeout_seconds=data.timeout_seconds,
            max_retries=data.max_retries,
            memory_mb=data.memory_mb,
            cpus=data.cpus,
            network=data.network,
            isolation=data.isolation,
            max_concurrency=data.max_concurrency,
            status=WorkerStatus.ACTIVE,
            version=1,
            created_at=now,
            updated_at=now,
            created_by=who.user_id,
            input_schema=data.input_schema,
            webhook_url=data.webhook_url,
        )
        await self._store.insert(worker)
        self._changed(who.tenant_id)
        return worker

    async def _check_isolation(self, problems: Problems, isolation: Isolation) -> None:
        reason = await isolation_problem(self._sandbox, isolation)
        if reason is not None:
            problems.add("isolation", reason)

    async def get(self, who: Principal, worker_id: str) -> Worker:
        return decode_worker(await self.get_json(who, worker_id))

    async def get_json(self, who: Principal, worker_id: str) -> bytes:
        """The worker's JSON as the store holds it, for the API to send without decoding."""
        who.require(Permission.READ)
        body = await self._store.get_json(who.tenant_id, worker_id)
        if body is None:
            raise NotFound(f"worker {worker_id} not found", code="worker_not_found")
        return body

    async def list(self, who: Principal, query: WorkerQuery) -> tuple[list[Worker], int]:
        body, total = await self.list_json(who, query)
        return msgspec.json.decode(body, type=list[Worker]), total

    async def list_json(self, who: Principal, query: WorkerQuery) -> tuple[bytes, int]:
        """The page's workers as the JSON array the store builds (served as is)."""
        who.require(Permission.READ)
        return await self._store.list_json(
            who.tenant_id,
            status=query.status,
            runtime=query.runtime.value if query.runtime else None,
            q=query.q,
            limit=query.per_page,
            offset=(query.page - 1) * query.per_page,
        )

    async def update(self, who: Principal, worker_id: str, patch: WorkerPatch) -> Worker:
        who.require(Permission.MANAGE)
        changes = _patch_changes(patch)
        if "isolation" in changes:
            problems = Problems()
            await self._check_isolation(problems, changes["isolation"])
            problems.raise_if_any()
        await self._check_webhook(changes.get("webhook_url"))
        now = iso(self._clock.now())
        worker = await self._modify(who, worker_id, lambda w: _apply_patch(w, changes, now))
        if TOOL_FIELDS & changes.keys():
            self._changed(who.tenant_id)
        return worker

    async def runnable_version(self, worker: Worker) -> WorkerVersion:
        """The worker's current version, or Conflict when it has nothing to run (neither
        inline source nor a bundle's image)."""
        version = await self._versions.get(worker.id, worker.version)
        if version is None or (version.source_code is None and version.image is None):
            raise Conflict(
                "worker has no source: set source_code or deploy a bundle",
                code="worker_has_no_source",
            )
        return version

    async def pinned_version(self, worker: Worker, number: int) -> WorkerVersion:
        """Version `number` of the worker, or Conflict when it can no longer run (its image
        pruned, its build failed, or nothing to run)."""
        version = await self._versions.get(worker.id, number)
        if (
            version is None
            or version.status != "ready"
            or (version.source_code is None and version.image is None)
        ):
            state = version.status if version is not None else "gone"
            raise Conflict(
                f"version {number} of worker {worker.id} is {state}: it cannot run again; "
                "re-run without same_version to use the current version",
                code="version_not_runnable",
            )
        return version

    async def deprecate(self, who: Principal, worker_id: str) -> Worker:
        who.require(Permission.MANAGE)
        now = iso(self._clock.now())
        worker = await self._modify(who, worker_id, lambda w: (_deprecated(w, now), False))
        self._changed(who.tenant_id)
        return worker

    async def _modify(self, who: Principal, worker_id: str, change: Change) -> Worker:
        """Read, change and save in one store transaction: concurrent requests cannot lose
        each other's changes, revive a deprecated worker, or claim the same version."""
        worker = await self._store.modify(who.tenant_id, worker_id, change, by=who.user_id)
        if worker is None:
            raise NotFound(f"worker {worker_id} not found", code="worker_not_found")
        return worker


def _apply_patch(worker: Worker, changes: dict[str, Any], now: str) -> tuple[Worker, bool]:
    if worker.status is WorkerStatus.DEPRECATED:
        raise Conflict("a deprecated worker cannot be changed", code="worker_deprecated")
    _validate_patch(worker, changes)
    changes = dict(changes)
    if "config" in changes:
        changes["config"] = _merge_config(worker.config, changes["config"])
    source_changed = any(f in changes and changes[f] != getattr(worker, f) for f in _SOURCE_FIELDS)
    if source_changed:
        changes["version"] = worker.version + 1
    changes["updated_at"] = now
    return msgspec.structs.replace(worker, **changes), source_changed


def _deprecated(worker: Worker, now: str) -> Worker:
    if worker.status is WorkerStatus.DEPRECATED:
        return worker
    return msgspec.structs.replace(worker, status=WorkerStatus.DEPRECATED, updated_at=now)


def _patch_changes(patch: WorkerPatch) -> dict[str, Any]:
    changes = {
        f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not UNSET
    }
    if "status" in changes:
        changes["status"] = WorkerStatus(changes["status"].value)
    return changes


def _validate_patch(worker: Worker, changes: dict[str, Any]) -> None:
    problems = Problems()
    if "config" in changes:
        check_config(problems, changes["config"])
    if "name" in changes:
        check_name(problems, changes["name"])
    if "secrets" in changes:
        check_secrets(problems, changes["secrets"])
    if "entrypoint" in changes:
        check_entrypoint(problems, changes["entrypoint"])
    if "cpus" in changes:
        check_cpus(problems, changes["cpus"])
    if "source_code" in changes:
        check_source(problems, worker.runtime, changes["source_code"])
    if "input_schema" in changes:
        check_input_schema(problems, changes["input_schema"])
    problems.raise_if_any()


def _merge_config(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
