"""Deploy use case: a bundle upload becomes a new worker version, built in the background.

    deploy()  checks the caller and the worker, unpacks the archive safely into a scratch dir
              (service/bundles.py; 400 before anything is kept), records version N as
              `building`, answers at once, and starts the build task.
    _build()  assembles the context (service/buildplan.py), builds `ava/worker-<id>:<N>`, keeps
              the log, then marks N `ready` and points the worker at it (only forward: a newer
              version, e.g. a source PATCH meanwhile, is never replaced), or marks N `failed`
              and leaves the worker as it was. The scratch dir goes in every case.
    recover() a build cut off by a stop is failed at the next start (its task is gone).
              Beside other processes (`owner` set), each build is held under a lease its
              process renews while it runs; every process fails builds whose lease lapsed
              (their process died), at start and every third of a lease after.

Old images are pruned after each ready build: the newest `retention` bundle images stay, as do
the current version's and any a queued or running job still needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.errors import BuildFailed, Conflict, PayloadTooLarge, UnsupportedMedia
from ava_platform.log import get_logger
from ava_platform.models import VersionInfo, VersionStatus, Worker, WorkerStatus, runtime_image
from ava_platform.service import buildplan, bundles
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.workers import WorkerService
from ava_platform.store.versions import BuildStore
from ava_platform.store.workers import WorkerStore

log = get_logger("ava.deploy")
MEDIA_KINDS = {
    "application/gzip": bundles.TAR_GZ,
    "application/x-gzip": bundles.TAR_GZ,
    "application/x-tar+gzip": bundles.TAR_GZ,
    "application/zip": bundles.ZIP,
    "application/x-zip-compressed": bundles.ZIP,
}
MAX_BUILD_LOG_CHARS = 1024 * 1024


class ImageBuilder(Protocol):
    """Builds images from a context tarball (executor/builds.py: Docker, and a fake)."""

    async def build(self, context_tar: Path, tag: str, on_line: Callable[[str], None]) -> None:
        """Streams the log to `on_line`; raises BuildFailed saying why."""
        ...

    async def remove(self, tag: str) -> bool:
        """Never raises; False when the image is still in use."""
        ...

    async def close(self) -> None: ...


DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def archive_kind(content_type: str) -> str:
    media = content_type.split(";")[0].strip().lower()
    kind = MEDIA_KINDS.get(media)
    if kind is None:
        raise UnsupportedMedia(
            f"a bundle must be application/gzip (tar.gz) or application/zip, got {media or 'none'}",
            code="unsupported_media_type",
        )
    return kind


def worker_image(worker_id: str, version: int) -> str:
    return f"ava/worker-{worker_id.lower()}:{version}"


class BuildLog:
    """The build's lines, capped: past the cap the oldest lines go, behind one marker."""

    def __init__(self, cap_chars: int = MAX_BUILD_LOG_CHARS) -> None:
        self._lines: list[str] = []
        self._size = 0
        self._cap = cap_chars
        self._dropped = 0

    def add(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line) + 1
        while self._size > self._cap and len(self._lines) > 1:
            self._size -= len(self._lines.pop(0)) + 1
            self._dropped += 1

    def text(self) -> str:
        head = [f"[ava] {self._dropped} earlier lines dropped"] if self._dropped else []
        return "\n".join([*head, *self._lines]) + "\n"


class DeployService:
    def __init__(
        self,
        *,
        workers: WorkerService,
        worker_store: WorkerStore,
        builds: BuildStore,
        builder: ImageBuilder,
        clock: Clock,
        scratch_root: Path,
        ca_bundle: Path | None,
        retention: int,
        concurrency: int = 1,
        owner: str | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self._workers = workers
        self._worker_store = worker_store
        self._builds = builds
        self._builder = builder
        self._clock = clock
        self._scratch_root = scratch_root
        self._ca_bundle = ca_bundle or DEFAULT_CA_BUNDLE
        self._retention = retention
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._owner = owner
        self._lease_s = lease_s
        self._watch: asyncio.Task[None] | None = None

    async def deploy(
        self, who: Principal, worker_id: str, data: bytes, content_type: str
    ) -> VersionInfo:
        who.require(Permission.MANAGE)
        kind = archive_kind(content_type)
        worker = await self._workers.get(who, worker_id)
        if worker.status is WorkerStatus.DEPRECATED:
            raise Conflict("a deprecated worker cannot be deployed", code="worker_deprecated")
        if len(data) > bundles.MAX_BUNDLE_BYTES:
            raise PayloadTooLarge(
                f"a bundle may be at most {bundles.MAX_BUNDLE_BYTES} bytes", code="bundle_too_large"
            )
        scratch, bundle = await self._unpack(data, kind, worker.entrypoint)
        now = iso(self._clock.now())
        version = await self._builds.add_building(
            worker.id,
            digest=bundle.digest,
            entrypoint=worker.entrypoint,
            by=who.user_id,
            now=now,
            owner=self._owner,
            lease_until=self._lease_until() if self._owner else None,
        )
        log.info("deploy_accepted", worker_id=worker.id, version=version, files=bundle.files)
        task = asyncio.create_task(self._build(worker, version, bundle, scratch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        row = await self._builds.get(worker.id, version)
        assert row is not None
        return row.info(worker.version)

    async def _unpack(self, data: bytes, kind: str, entrypoint: str) -> tuple[Path, bundles.Bundle]:
        self._scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="deploy-", dir=self._scratch_root))
        try:
            bundle = await asyncio.to_thread(bundles.unpack, data, kind, scratch)
            bundle = await asyncio.to_thread(bundles.hoist_single_dir, bundle, entrypoint)
            bundles.require_entrypoint(bundle, entrypoint)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise
        return scratch, bundle

    async def _build(
        self, worker: Worker, version: int, bundle: bundles.Bundle, scratch: Path
    ) -> None:
        build_log = BuildLog()
        tag = worker_image(worker.id, version)
        try:
            async with self._slots:
                await self._run_build(worker, version, bundle, scratch, tag, build_log)
            await self._finish(worker, version, VersionStatus.READY, tag, build_log, None)
            await self._advance(worker, version)
            await self._prune(worker.tenant_id, worker.id)
        except BuildFailed as exc:
            await self._finish(worker, version, VersionStatus.FAILED, None, build_log, exc.message)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._finish(
                        worker,
                        version,
                        VersionStatus.FAILED,
                        None,
                        build_log,
                        "the platform stopped during the build",
                    )
                )
            raise
        except Exception as exc:
            log.exception("build_crashed", worker_id=worker.id, version=version)
            reason = f"internal error during the build: {type(exc).__name__}"
            await self._finish(worker, version, VersionStatus.FAILED, None, build_log, reason)
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _run_build(
        self,
        worker: Worker,
        version: int,
        bundle: bundles.Bundle,
        scratch: Path,
        tag: str,
        build_log: BuildLog,
    ) -> None:
        plan = buildplan.plan(
            worker.runtime, runtime_image(worker.runtime), bundle.root, worker.entrypoint
        )
        build_log.add(f"[ava] building {tag} from {runtime_image(worker.runtime)}")
        build_log.add(
            f"[ava] bundle {bundle.digest}: {bundle.files} files, {bundle.expanded_bytes} bytes"
        )
        if plan.installs:
            build_log.add(f"[ava] installing dependencies from {plan.installs}")
        # not the executor's container label keys: a container inherits its image's labels
        labels = {
            "ava.worker-image.worker_id": worker.id,
            "ava.worker-image.version": str(version),
            "ava.worker-image.bundle_digest": bundle.digest,
        }
        context = scratch / "context.tar"
        ca = await asyncio.to_thread(_read_ca, self._ca_bundle)
        await asyncio.to_thread(buildplan.write_context, context, plan, bundle.root, ca, labels)
        log.info("build_started", worker_id=worker.id, version=version, image=tag)
        await self._builder.build(context, tag, build_log.add)
        build_log.add(f"[ava] built {tag}")

    async def _finish(
        self,
        worker: Worker,
        version: int,
        status: VersionStatus,
        image: str | None,
        build_log: BuildLog,
        error: str | None,
    ) -> None:
        if error:
            build_log.add(f"[ava] build failed: {error}")
        await self._builds.finish(
            worker.id,
            version,
            status=status,
            image=image,
            build_log=build_log.text(),
            error=error,
            now=iso(self._clock.now()),
        )
        log.info("build_finished", worker_id=worker.id, version=version, status=status.value)

    async def _advance(self, worker: Worker, version: int) -> None:
        row = await self._builds.get(worker.id, version)
        assert row is not None
        now = iso(self._clock.now())

        def change(current: Worker) -> tuple[Worker, bool]:
            if current.version >= version or current.status is WorkerStatus.DEPRECATED:
                return current, False
            moved = msgspec.structs.replace(
                current,
                version=version,
                source_code=None,
                entrypoint=row.entrypoint,
                updated_at=now,
            )
            return moved, False

        await self._worker_store.modify(worker.tenant_id, worker.id, change, by=row.created_by)

    async def _prune(self, tenant_id: str, worker_id: str) -> None:
        worker = await self._worker_store.get(tenant_id, worker_id)
        if worker is None:
            return
        for version, image in await self._builds.prunable(
            worker_id, keep=self._retention, current=worker.version
        ):
            if await self._builder.remove(image):
                await self._builds.set_pruned(worker_id, version)
                log.info("image_pruned", worker_id=worker_id, version=version, image=image)

    def _lease_until(self) -> str:
        return iso(self._clock.now() + timedelta(seconds=self._lease_s))

    async def start(self) -> None:
        """Alone on the store: every build left `building` was cut by a stop. Beside others:
        only those whose process stopped renewing them, now and while this one runs."""
        await self.recover()
        if self._owner is not None:
            self._watch = asyncio.create_task(self._watch_loop(), name="ava-build-leases")

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self._lease_s / 3))
            try:
                if self._owner is not None and self._tasks:
                    await self._builds.renew_builds(self._owner, self._lease_until())
                await self.recover()
            except Exception as exc:
                log.error("build_lease_renewal_failed", error=str(exc))

    async def recover(self) -> None:
        failed = await self._builds.fail_unfinished(
            "the platform restarted during the build; deploy again",
            iso(self._clock.now()),
            lapsed_only=self._owner is not None,
        )
        if failed:
            log.warning("builds_interrupted", count=failed)

    async def wait_idle(self) -> None:
        """For tests and shutdown: every build started so far has ended."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._builder.close()


def _read_ca(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
