"""Deploy, versions and rollback rules with a fake image builder (the real build is covered by
tests/integration/test_deploy.py): the version moves only when ready, a failed build keeps the
old one, rollback, retention pruning, interrupted builds, numbering beside source PATCHes."""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ava_platform.clock import ManualClock
from ava_platform.config import load_settings
from ava_platform.errors import Conflict, NotFound
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.models import Role, VersionStatus, WorkerCreate, WorkerPatch
from ava_platform.service.auth import Principal
from ava_platform.wiring import Platform
from tests.support import server_env

WHO = Principal("ten_dep", "usr_dep", Role.ADMIN)
GZIP = "application/gzip"


def bundle(text: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        data = f"def handler(i, e):\n    return {text!r}\n".encode()
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def builder() -> FakeImageBuilder:
    return FakeImageBuilder()


@pytest.fixture
async def platform(tmp_path: Path, builder: FakeImageBuilder) -> AsyncIterator[Platform]:
    settings = load_settings(server_env(tmp_path / "ava.db", AVA_IMAGE_RETENTION="2"))
    p = Platform(
        settings,
        clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)),
        executor=FakeExecutor(),
        run_scheduler=False,
        builder=builder,
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def inline_worker(platform: Platform) -> str:
    body = WorkerCreate(name="d", runtime="python", source_code="def handler(i, e): return 'v1'")  # type: ignore[arg-type]
    return (await platform.workers.create(WHO, body)).id


async def test_version_moves_only_when_the_build_is_ready(
    platform: Platform, builder: FakeImageBuilder
) -> None:
    wid = await inline_worker(platform)
    builder.gate = asyncio.Event()
    info = await platform.deploys.deploy(WHO, wid, bundle("v2"), GZIP)
    assert info.version == 2 and info.status is VersionStatus.BUILDING and info.kind == "bundle"
    await asyncio.sleep(0.05)
    assert (await platform.workers.get(WHO, wid)).version == 1  # still building
    builder.gate.set()
    await platform.deploys.wait_idle()
    worker = await platform.workers.get(WHO, wid)
    assert worker.version == 2 and worker.source_code is None
    v2 = await platform.versions.get(WHO, wid, 2)
    assert v2.status is VersionStatus.READY and v2.image == f"ava/worker-{wid}:2" and v2.current
    log = await platform.versions.build_log(WHO, wid, 2)
    assert "Step 1/1" in log and "[ava] built" in log
    assert builder.built == [f"ava/worker-{wid}:2"]
    assert (await platform.workers.runnable_version(worker)).version == worker.version


async def test_failed_build_keeps_the_old_version_and_says_why(
    platform: Platform, builder: FakeImageBuilder
) -> None:
    wid = await inline_worker(platform)
    builder.fail_with = "pip: No matching distribution found for nope==9"
    await platform.deploys.deploy(WHO, wid, bundle("v2"), GZIP)
    await platform.deploys.wait_idle()
    worker = await platform.workers.get(WHO, wid)
    assert worker.version == 1 and worker.source_code is not None
    v2 = await platform.versions.get(WHO, wid, 2)
    assert v2.status is VersionStatus.FAILED and v2.error and "nope==9" in v2.error
    assert "No matching distribution" in await platform.versions.build_log(WHO, wid, 2)
    with pytest.raises(Conflict):
        await platform.versions.rollback(WHO, wid, 2)


async def test_rollback_and_numbering_beside_source_patches(platform: Platform) -> None:
    wid = await inline_worker(platform)
    await platform.deploys.deploy(WHO, wid, bundle("v2"), GZIP)
    await platform.deploys.wait_idle()
    rolled = await platform.versions.rollback(WHO, wid, 1)
    assert rolled.version == 1 and rolled.source_code == "def handler(i, e): return 'v1'"
    # a source change after a rollback takes a fresh number, never 2 again
    patched = await platform.workers.update(
        WHO, wid, WorkerPatch(source_code="def handler(i, e): 3")
    )
    assert patched.version == 3
    back = await platform.versions.rollback(WHO, wid, 2)
    assert back.version == 2 and back.source_code is None
    with pytest.raises(NotFound):
        await platform.versions.rollback(WHO, wid, 9)
    with pytest.raises(NotFound):  # another tenant
        await platform.versions.rollback(Principal("ten_other", "u", Role.ADMIN), wid, 1)
    versions, total = await platform.versions.page(WHO, wid, page=1, per_page=10)
    assert total == 3 and [v.version for v in versions] == [3, 2, 1]
    assert [v.current for v in versions] == [False, True, False]


async def test_old_images_are_pruned_by_retention(
    platform: Platform, builder: FakeImageBuilder
) -> None:
    wid = await inline_worker(platform)
    for n in range(2, 6):
        await platform.deploys.deploy(WHO, wid, bundle(f"v{n}"), GZIP)
        await platform.deploys.wait_idle()
    assert (await platform.workers.get(WHO, wid)).version == 5
    # retention 2: versions 5 and 4 keep their images; 3 and 2 are pruned
    assert sorted(builder.removed) == [f"ava/worker-{wid}:2", f"ava/worker-{wid}:3"]
    statuses = {
        v.version: v.status
        for v in (await platform.versions.page(WHO, wid, page=1, per_page=10))[0]
    }
    assert statuses == {
        5: VersionStatus.READY,
        4: VersionStatus.READY,
        3: VersionStatus.PRUNED,
        2: VersionStatus.PRUNED,
        1: VersionStatus.READY,  # inline: no image
    }
    with pytest.raises(Conflict):
        await platform.versions.rollback(WHO, wid, 3)


async def test_a_build_cut_off_by_a_stop_is_failed_at_the_next_start(
    platform: Platform, builder: FakeImageBuilder
) -> None:
    wid = await inline_worker(platform)
    builder.gate = asyncio.Event()
    await platform.deploys.deploy(WHO, wid, bundle("v2"), GZIP)
    await platform.build_store.finish(  # as if the task vanished with the process
        wid, 2, status=VersionStatus.BUILDING, image=None, build_log="", error=None, now="t"
    )
    await platform.deploys.recover()
    v2 = await platform.versions.get(WHO, wid, 2)
    assert v2.status is VersionStatus.FAILED and "restarted" in (v2.error or "")
    assert (await platform.workers.get(WHO, wid)).version == 1
