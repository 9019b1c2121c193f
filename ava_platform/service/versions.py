"""Version use cases: list a worker's versions, read a build log, roll back.

An inline version with no source (the v1 of a worker created without `source_code`) has
nothing to run: it is shown as `empty`, whatever the store recorded, and cannot be rolled
back to (409 `version_not_runnable`)."""

from __future__ import annotations

import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.errors import Conflict, NotFound
from ava_platform.models import VersionInfo, VersionStatus, Worker, WorkerStatus
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.workers import WorkerService
from ava_platform.store.versions import BuildStore, VersionRow
from ava_platform.store.workers import WorkerStore, source_digest


def _is_empty(row: VersionRow) -> bool:
    """An inline version without source. The listing reads no source, so it is recognised by
    its digest, which is the digest of no source for such a version."""
    if row.bundle:
        return False
    if row.source_code is not None:
        return not row.source_code
    return row.source_digest == source_digest(None, row.entrypoint)


def _info(row: VersionRow, current: int) -> VersionInfo:
    info = row.info(current)
    if _is_empty(row) and row.status is VersionStatus.READY:
        return msgspec.structs.replace(info, status=VersionStatus.EMPTY)
    return info


class VersionService:
    def __init__(
        self, *, workers: WorkerService, worker_store: WorkerStore, builds: BuildStore, clock: Clock
    ) -> None:
        self._workers = workers
        self._worker_store = worker_store
        self._builds = builds
        self._clock = clock

    async def page(
        self, who: Principal, worker_id: str, *, page: int, per_page: int
    ) -> tuple[list[VersionInfo], int]:
        worker = await self._workers.get(who, worker_id)
        rows, total = await self._builds.page(
            worker.id, limit=per_page, offset=(page - 1) * per_page
        )
        return [_info(r, worker.version) for r in rows], total

    async def get(self, who: Principal, worker_id: str, version: int) -> VersionInfo:
        worker = await self._workers.get(who, worker_id)
        return _info(await self._row(worker, version), worker.version)

    async def build_log(self, who: Principal, worker_id: str, version: int) -> str:
        worker = await self._workers.get(who, worker_id)
        await self._row(worker, version)
        return await self._builds.build_log(worker.id, version) or ""

    async def rollback(self, who: Principal, worker_id: str, version: int) -> Worker:
        """Points the worker at an earlier ready, non-empty version; running jobs keep theirs."""
        who.require(Permission.MANAGE)
        worker = await self._workers.get(who, worker_id)
        row = await self._row(worker, version)
        if _is_empty(row):
            raise Conflict(
                f"version {version} has no source: there is nothing to run; "
                "roll back to a version with inline source or a built bundle",
                code="version_not_runnable",
            )
        if row.status is not VersionStatus.READY:
            raise Conflict(
                f"version {version} is {row.status.value}: only a ready version can be used",
                code="version_not_ready",
            )
        now = iso(self._clock.now())

        def change(current: Worker) -> tuple[Worker, bool]:
            if current.status is WorkerStatus.DEPRECATED:
                raise Conflict("a deprecated worker cannot be changed", code="worker_deprecated")
            if current.version == version:
                return current, False
            moved = msgspec.structs.replace(
                current,
                version=version,
                source_code=row.source_code,
                entrypoint=row.entrypoint,
                updated_at=now,
            )
            return moved, False

        updated = await self._worker_store.modify(who.tenant_id, worker.id, change, by=who.user_id)
        if updated is None:
            raise NotFound(f"worker {worker_id} not found", code="worker_not_found")
        return updated

    async def _row(self, worker: Worker, version: int) -> VersionRow:
        row = await self._builds.get(worker.id, version)
        if row is None:
            raise NotFound(f"worker {worker.id} has no version {version}", code="version_not_found")
        return row
