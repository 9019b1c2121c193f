"""The Docker implementation of the Executor: an attempt's life in a cold or a prewarmed
container, and the pool's refills. The engine calls of an attempt go over the engine's API
from the loop (executor/containers.py); the SDK's blocking ones (listing, images, a ping) run
on a dedicated thread pool. Every container is killed and removed when its attempt ends,
whatever happened, off the attempt's critical path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp

from ava_platform.config import PoolSettings
from ava_platform.errors import ExecutorError
from ava_platform.executor import attach
from ava_platform.executor.base import BindSink, ContainerRef, OutputSink, RunResult, RunSpec
from ava_platform.executor.containers import (
    POOL_LABEL,
    Containers,
    close_quietly,
    exit_status,
    job_labels,
    shim_gone,
    translate,
)
from ava_platform.executor.egress import EgressGuard
from ava_platform.executor.engine_api import EngineNotFound, EngineRefused
from ava_platform.executor.warm import Idle, Shape, WarmPool
from ava_platform.log import get_logger

log = get_logger("ava.executor")
T = TypeVar("T")
WARM_TTL_ENV = "AVA_WARM_TTL_S"  # the shim of a prewarmed container ends itself after this
# ended containers whose removal may wait for a quiet engine (see _reap); beyond this many the
# oldest is removed at once, so a sustained load never piles them up
MAX_UNREMOVED = 32


class DockerExecutor:
    def __init__(
        self,
        *,
        platform_id: str = "default",
        base_url: str | None = None,
        max_threads: int = 128,
        pool: PoolSettings | None = None,
        egress: EgressGuard | None = None,
    ) -> None:
        self._engine = Containers(platform_id, base_url, egress)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="ava-docker")
        self._warm = WarmPool(pool or PoolSettings(enabled=False))
        self._handover_s: deque[float] = deque(maxlen=1000)
        self._cold_inflight = 0
        self._refiller: asyncio.Task[None] | None = None
        self._refill_wake: asyncio.Event | None = None
        self._reaping: set[asyncio.Task[None]] = set()
        self._unremoved: deque[str] = deque()
        self._sweeper: asyncio.Task[None] | None = None
        self._readers: set[asyncio.Task[None]] = set()
        self._prewarming: set[asyncio.Future[Idle]] = set()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # -- the life of one attempt -------------------------------------------------------------

    async def run(
        self,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None = None,
        result_seen: asyncio.Event | None = None,
    ) -> RunResult:
        shape = Shape(spec.image, spec.memory_mb, spec.cpus, spec.network_enabled, spec.isolation)
        idle = self._warm.take(shape) if self._warm.settings.enabled else None
        self._wake_refill()
        if idle is not None:
            result = await self._run_warm(idle, spec, on_output, cancel, on_bound, result_seen)
            if result is not None:
                return result
        return await self._run_cold(spec, on_output, cancel, on_bound, result_seen)

    async def _run_cold(
        self,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None,
        result_seen: asyncio.Event | None,
    ) -> RunResult:
        container_id: str | None = None
        # the create call runs as a task of its own and finishes even if this one is cancelled (a
        # shutdown); it is shielded so its container id is never lost, and so never leaked
        self._cold_inflight += 1
        create = asyncio.ensure_future(self._engine.create(spec.image, spec, job_labels(spec)))
        try:
            t0 = time.monotonic()
            try:
                container_id = await asyncio.shield(create)
            finally:
                self._cold_inflight -= 1
                self._wake_refill()  # refills waited for this create
                self._sweep()  # and so did removals
            if on_bound is not None:
                await on_bound(container_id)
            sock = await self._engine.attach(container_id)
            reader = self._start_reader(sock, on_output)
            await self._engine.start(container_id)
            exited = await self._engine.watch_exit(container_id)
            await attach.send_stdin(sock, spec.envelope)
            return await self._finish(
                container_id, spec, cancel, reader, exited, time.monotonic() - t0, result_seen
            )
        except ExecutorError:
            raise
        except Exception as exc:
            raise translate(exc, "container run failed") from exc
        finally:
            if container_id is None:
                container_id = await _created_id(create)
            if container_id is not None:
                self._reap(container_id)

    async def _run_warm(
        self,
        idle: Idle,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None,
        result_seen: asyncio.Event | None,
    ) -> RunResult | None:
        """The attempt in a prewarmed container; None when the container died in the pool
        before the job reached it (the attempt then goes cold)."""
        t0 = time.monotonic()
        try:
            if on_bound is not None:
                await on_bound(idle.container_id)  # stored before the envelope is sent
            try:
                # registered before the job arrives (the container removes itself on exit)
                exited = idle.exited
                reader = self._start_reader(idle.handle, on_output)
                await attach.send_stdin(idle.handle, spec.envelope)
            except (OSError, EngineRefused, aiohttp.ClientError):
                # its shim is gone (the engine restarted?): so, likely, are the others
                log.warning("warm_handover_failed", container_id=idle.container_id)
                close_quietly(idle.exited)
                self._drain_pool()
                return None
            handover_s = time.monotonic() - t0
            self._handover_s.append(handover_s)
            return await self._finish(
                idle.container_id, spec, cancel, reader, exited, handover_s, result_seen
            )
        except ExecutorError:
            raise
        except Exception as exc:
            raise translate(exc, "container run failed") from exc
        finally:
            self._reap(idle.container_id)

    async def _finish(
        self,
        container_id: str,
        spec: RunSpec,
        cancel: asyncio.Event,
        reader: asyncio.Task[None],
        exited: aiohttp.ClientResponse,
        start_latency_s: float,
        result_seen: asyncio.Event | None,
    ) -> RunResult:
        """From the envelope sent to the result known; teardown is not on this path."""
        exit_code, timed_out, cancelled = await self._wait(
            container_id, spec, cancel, exited, result_seen
        )
        if exit_code is None and not (timed_out or cancelled):
            # the frame and stderr's end marker are the shim's last acts, so the output is all
            # in: the engine reports the exit some 40 ms later, and the answer does not wait
            return RunResult(
                exit_code=None,
                ended_by_frame=True,
                container_id=container_id,
                start_latency_s=start_latency_s,
            )
        await asyncio.wait_for(asyncio.shield(reader), timeout=10)
        oom = await self._engine.oom_killed(container_id)
        if oom is None:  # a prewarmed container removes itself once it exits
            oom = exit_code == 137 and not (timed_out or cancelled)
        if exit_code and not (timed_out or cancelled or oom) and not await self.ping():
            # an engine that stops kills its containers, and answers their waits and an
            # inspect or two before it goes: the job did not fail, the platform did
            raise ExecutorError("the engine went away during the attempt")
        return RunResult(
            exit_code=exit_code,
            timed_out=timed_out,
            cancelled=cancelled,
            oom_killed=oom,
            container_id=container_id,
            start_latency_s=start_latency_s,
        )

    async def _wait(
        self,
        container_id: str,
        spec: RunSpec,
        cancel: asyncio.Event,
        exited: aiohttp.ClientResponse,
        result_seen: asyncio.Event | None,
    ) -> tuple[int | None, bool, bool]:
        """(exit code, timed out, cancelled); (None, False, False) when the result frame came
        first (the exit status then is the protocol's for that frame)."""
        waiter = asyncio.ensure_future(exit_status(exited))
        cancelled = asyncio.ensure_future(cancel.wait())
        framed = asyncio.ensure_future((result_seen or asyncio.Event()).wait())
        done, _ = await asyncio.wait(
            {waiter, cancelled, framed},
            timeout=spec.timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        cancelled.cancel()
        framed.cancel()
        if waiter in done:
            return int(waiter.result().get("StatusCode", -1)), False, False
        if framed in done and not cancel.is_set():
            # the waiter ends with the container, in the background; nothing awaits it
            waiter.add_done_callback(lambda f: f.cancelled() or f.exception())
            return None, False, False
        was_cancelled = cancel.is_set()
        await self._engine.kill(container_id)
        try:
            status = await asyncio.wait_for(waiter, timeout=30)
            code: int | None = int(status.get("StatusCode", -1))
        except (TimeoutError, aiohttp.ClientError, ValueError):
            code = None
        return code, not was_cancelled, was_cancelled

    # -- the prewarmed pool --------------------------------------------------------------------

    def _wake_refill(self) -> None:
        if not self._warm.settings.enabled:
            return
        if self._refiller is None or self._refiller.done():
            self._refill_wake = asyncio.Event()
            self._refiller = asyncio.create_task(self._refill_loop(), name="ava-warm-refill")
        assert self._refill_wake is not None
        self._refill_wake.set()

    async def _refill_loop(self) -> None:
        assert self._refill_wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refill_wake.wait(), timeout=1.0)
            self._refill_wake.clear()
            gone = self._warm.expired() + self._warm.prune(shim_gone) + self._warm.surplus()
            for idle in gone:
                self._reap(idle.container_id, idle.handle, idle.exited)
            try:
                await self._refill()
            except Exception as exc:  # the engine went away: the pool waits for it
                log.warning("warm_refill_failed", error=f"{type(exc).__name__}: {exc}")
                self._drain_pool()
                await asyncio.sleep(2.0)

    async def _refill(self) -> None:
        # one container at a time, and only while no attempt is creating one: jobs go first
        while self._cold_inflight == 0 and (shape := self._warm.wanted()) is not None:
            self._warm.creating(shape, +1)
            # shielded, and kept until its container is in the pool: a shutdown that cancels
            # the refill waits for it and removes the container (one only created is never
            # removed by the engine)
            prewarm = asyncio.ensure_future(self._prewarm(shape))
            self._prewarming.add(prewarm)
            try:
                idle = await asyncio.shield(prewarm)
            except Exception:
                self._prewarming.discard(prewarm)
                raise
            finally:
                self._warm.creating(shape, -1)
            self._prewarming.discard(prewarm)
            self._warm.put(idle)

    async def _prewarm(self, shape: Shape) -> Idle:
        """Created, attached and started: the shim blocks on stdin, holding nothing."""
        ttl = f"{self._warm.settings.idle_ttl_s:g}"
        container_id = await self._engine.create(
            shape.image, shape, {POOL_LABEL: "1"}, env={WARM_TTL_ENV: ttl}, auto_remove=True
        )
        sock = None
        try:
            sock = await self._engine.attach(container_id)
            await self._engine.start(container_id)
            exited = await self._engine.watch_exit(container_id)
        except Exception:
            if sock is not None:
                close_quietly(sock)
            with contextlib.suppress(EngineRefused, aiohttp.ClientError, OSError):
                await self._engine.remove(container_id)
            raise
        return Idle(container_id, shape, time.monotonic(), sock, exited)

    def _drain_pool(self) -> None:
        for idle in self._warm.drain():
            self._reap(idle.container_id, idle.handle, idle.exited)

    def pool_stats(self) -> dict[str, Any]:
        stats = self._warm.stats()
        handover = sorted(self._handover_s)
        stats["handover_ms_p50"] = (
            round(handover[len(handover) // 2] * 1000, 2) if handover else None
        )
        # ended containers not yet removed (their removal waits for a quiet engine)
        stats["removals_pending"] = len(self._unremoved) + len(self._reaping)
        return stats

    def _reap(self, container_id: str, sock: Any = None, exited: Any = None) -> None:
        """Ends a container off the attempt's critical path: it is killed at once (nothing of
        an ended attempt runs on), and removed once no create is in flight. Removing is engine
        work that only frees disk: in a burst the engine's time goes to the next jobs'
        containers first. close() removes every one left; a restart's orphan sweep removes
        those of a process that died."""
        if sock is not None:
            close_quietly(sock)
        if exited is not None:
            close_quietly(exited)
        task = asyncio.ensure_future(self._retire(container_id))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _retire(self, container_id: str) -> None:
        try:
            await self._engine.kill(container_id)
        except Exception as exc:  # the engine is away: the removal below retries
            log.warning("container_kill_failed", container_id=container_id, error=str(exc))
        self._unremoved.append(container_id)
        self._sweep()

    def _sweep(self) -> None:
        if self._unremoved and (self._sweeper is None or self._sweeper.done()):
            self._sweeper = asyncio.ensure_future(self._remove_unremoved(force=False))
            self._reaping.add(self._sweeper)
            self._sweeper.add_done_callback(self._reaping.discard)

    async def _remove_unremoved(self, *, force: bool) -> None:
        while self._unremoved and (
            force or self._cold_inflight == 0 or len(self._unremoved) > MAX_UNREMOVED
        ):
            await self.kill_and_remove(self._unremoved.popleft())

    def _start_reader(self, sock: Any, on_output: OutputSink) -> asyncio.Task[None]:
        """The attach socket read on the loop (executor/attach.py): no thread hop between
        the container's output and the collector, and output paced to a slice per turn."""
        task = asyncio.create_task(attach.pump(sock, on_output), name="ava-attach-reader")
        self._readers.add(task)
        task.add_done_callback(self._readers.discard)
        return task

    # -- blocking SDK calls (run on the pool) -----------------------------------------------

    # -- housekeeping ----------------------------------------------------------------------

    async def kill_and_remove(self, container_id: str) -> None:
        """Never raises: teardown must not mask the attempt's own outcome."""
        for delay in (0.0, 0.2, 1.0):
            await asyncio.sleep(delay)
            try:
                await self._engine.remove(container_id)
                return
            except EngineNotFound:
                return
            except EngineRefused as exc:
                if exc.status == 409 and "already in progress" in exc.message:
                    return  # a prewarmed container removing itself
                log.warning("container_remove_failed", container_id=container_id, error=str(exc))
            except Exception as exc:
                log.warning("container_remove_failed", container_id=container_id, error=str(exc))

    async def list_containers(self) -> list[ContainerRef]:
        try:
            rows = await self._call(self._engine.managed)
        except Exception as exc:
            raise translate(exc, "cannot list containers") from exc
        return [
            ContainerRef(
                container_id=row["Id"],
                job_id=row.get("Labels", {}).get("ava.job_id", ""),
                attempt=int(row.get("Labels", {}).get("ava.attempt", "0") or 0),
                running=row.get("State") == "running",
            )
            for row in rows
        ]

    async def image_exists(self, image: str) -> bool:
        try:
            return await self._call(self._engine.has_image, image)
        except Exception as exc:
            raise translate(exc, "cannot inspect image") from exc

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._call(self._engine.api().ping), timeout=3))
        except Exception:
            return False

    async def close(self) -> None:
        if self._refiller is not None:
            self._refiller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refiller
        if self._prewarming:
            done, _ = await asyncio.wait(set(self._prewarming), timeout=60)
            for prewarm in done:
                if not prewarm.cancelled() and prewarm.exception() is None:
                    idle = prewarm.result()
                    self._reap(idle.container_id, idle.handle, idle.exited)
        self._drain_pool()
        if self._reaping:
            await asyncio.wait(set(self._reaping), timeout=30)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._remove_unremoved(force=True), timeout=30)
        if self._reaping:  # a sweep started by a retirement above may still be removing one
            await asyncio.wait(set(self._reaping), timeout=30)
        for reader in list(self._readers):  # their containers are gone: nothing more comes
            reader.cancel()
        if self._readers:
            await asyncio.wait(set(self._readers), timeout=5)
        await self._engine.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _created_id(create: asyncio.Future[str]) -> str | None:
    """The id of a container whose creation was still in flight when the attempt ended."""
    try:
        return await asyncio.wait_for(asyncio.shield(create), timeout=60)
    except Exception:
        return None  # creation failed or hung: there is nothing to remove
