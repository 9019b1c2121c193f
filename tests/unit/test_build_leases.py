"""Builds beside other processes (both backends): a build is held under its process's lease;
the build of a process that died (its lease lapsed) is failed by a surviving process, at its
start or while it runs, and a live process's build is never touched."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from ava_platform.clock import SystemClock, iso
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.models import Role, Runtime, VersionStatus, WorkerCreate
from ava_platform.service.auth import Principal
from ava_platform.service.deploy import DeployService
from ava_platform.service.workers import WorkerService
from ava_platform.store.database import Database
from ava_platform.store.versions import BuildStore
from ava_platform.store.workers import VersionStore, WorkerStore

WHO = Principal("ten_b", "usr_b", Role.ADMIN)
CLOCK = SystemClock()


def _at(seconds: float) -> str:
    return iso(CLOCK.now() + timedelta(seconds=seconds))


async def _service(db: Database, tmp_path: Path, owner: str, lease_s: float) -> DeployService:
    workers = WorkerService(WorkerStore(db), VersionStore(db), CLOCK)
    return DeployService(
        workers=workers,
        worker_store=WorkerStore(db),
        builds=BuildStore(db),
        builder=FakeImageBuilder(),
        clock=CLOCK,
        scratch_root=tmp_path / "scratch",
        ca_bundle=None,
        retention=3,
        owner=owner,
        lease_s=lease_s,
    )


async def _building(db: Database, worker_id: str, owner: str, lease_until: str) -> int:
    return await BuildStore(db).add_building(
        worker_id, digest="d", entrypoint="main.py", by="u", now=_at(0), owner=owner,
        lease_until=lease_until,
    )  # fmt: skip


async def _status(db: Database, worker_id: str, version: int) -> VersionStatus:
    row = await BuildStore(db).get(worker_id, version)
    assert row is not None
    return VersionStatus(row.status)


async def test_a_dead_process_build_is_failed_and_a_live_one_kept(
    store_db: Database, tmp_path: Path
) -> None:
    worker = await WorkerService(WorkerStore(store_db), VersionStore(store_db), CLOCK).create(
        WHO, WorkerCreate(name="w", runtime=Runtime.PYTHON, source_code="x")
    )
    dead = await _building(store_db, worker.id, "build_dead", _at(-1))
    live = await _building(store_db, worker.id, "build_live", _at(60))
    # lapses while the surviving process runs: failed by its watch, not at its start
    dying = await _building(store_db, worker.id, "build_dying", _at(0.8))
    deploys = await _service(store_db, tmp_path, "build_other", lease_s=0.6)
    await deploys.start()
    try:
        assert await _status(store_db, worker.id, dead) is VersionStatus.FAILED
        assert await _status(store_db, worker.id, dying) is VersionStatus.BUILDING
        deadline = time.monotonic() + 10
        while await _status(store_db, worker.id, dying) is VersionStatus.BUILDING:
            assert time.monotonic() < deadline, "a lapsed build stayed building"
            await asyncio.sleep(0.1)
        assert await _status(store_db, worker.id, live) is VersionStatus.BUILDING
        row = await BuildStore(store_db).get(worker.id, dead)
        assert row is not None and "deploy again" in (row.error or "")
    finally:
        await deploys.stop()


async def test_a_renewed_build_outlives_its_first_lease(store_db: Database) -> None:
    worker = await WorkerService(WorkerStore(store_db), VersionStore(store_db), CLOCK).create(
        WHO, WorkerCreate(name="w", runtime=Runtime.PYTHON, source_code="x")
    )
    builds = BuildStore(store_db)
    version = await _building(store_db, worker.id, "build_a", _at(1))
    await builds.renew_builds("build_a", _at(60))
    await builds.renew_builds("build_b", _at(-60))  # another owner's renewal touches nothing
    failed = await builds.fail_unfinished("gone", _at(5), lapsed_only=True)
    assert failed == 0
    assert await _status(store_db, worker.id, version) is VersionStatus.BUILDING
    assert await builds.fail_unfinished("gone", _at(61), lapsed_only=True) == 1
