"""The Docker implementation of the Executor: the only module of the platform that runs
containers. Every blocking SDK call runs on a dedicated thread pool, never on the event loop;
tenacity retries only transient engine errors; every container is killed and removed when its
attempt ends, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.types import LogConfig
from docker.utils.socket import frames_iter
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ava_platform.errors import ExecutorError, ImageMissing
from ava_platform.executor.base import BindSink, ContainerRef, OutputSink, RunResult, RunSpec
from ava_platform.executor.engine import engine_client
from ava_platform.executor.warm import Idle, PoolSettings, Shape, WarmPool
from ava_platform.log import get_logger

log = get_logger("ava.executor")
T = TypeVar("T")
SHIM_USER = "10001:10001"
MANAGED_LABEL = "ava.managed"
PLATFORM_LABEL = "ava.platform_id"
POOL_LABEL = "ava.pool"  # a prewarmed container: no job's until one takes it
PIDS_LIMIT = 256
TMPFS_MB = 64
WARM_TTL_ENV = "AVA_WARM_TTL_S"  # the shim of a prewarmed container ends itself after this
_STREAMS = {1: "stdout", 2: "stderr"}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    if isinstance(exc, docker.errors.APIError) and not isinstance(exc, docker.errors.NotFound):
        return exc.status_code is not None and exc.status_code >= 500
    return False


_engine_retry = retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.1, max=1.0),
    reraise=True,
)


def job_labels(spec: RunSpec) -> dict[str, str]:
    return {
        "ava.job_id": spec.job_id,
        "ava.tenant_id": spec.tenant_id,
        "ava.worker_id": spec.worker_id,
        "ava.attempt": str(spec.attempt),
    }


def _translate(exc: Exception, what: str) -> ExecutorError:
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageMissing(f"image missing: {exc.explanation or exc}")
    return ExecutorError(f"{what}: {type(exc).__name__}: {exc}")


class DockerExecutor:
    def __init__(
        self,
        *,
        platform_id: str = "default",
        base_url: str | None = None,
        max_threads: int = 128,
        pool: PoolSettings | None = None,
    ) -> None:
        # containers carry the id of the platform that made them, so two platforms sharing an
        # engine (a dev server beside a test run) never sweep up each other's containers
        self._platform_id = platform_id
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="ava-docker")
        self._warm = WarmPool(pool or PoolSettings(enabled=False))
        self._handover_s: deque[float] = deque(maxlen=1000)
        self._cold_inflight = 0
        self._refiller: asyncio.Task[None] | None = None
        self._refill_wake: asyncio.Event | None = None
        self._reaping: set[asyncio.Task[None]] = set()

    def _api(self) -> docker.APIClient:
        if self._client is None:
            self._client = engine_client(self._base_url).api
        return self._client

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
    ) -> RunResult:
        shape = Shape(spec.image, spec.memory_mb, spec.cpus, spec.network_enabled)
        idle = self._warm.take(shape) if self._warm.settings.enabled else None
        self._wake_refill()
        if idle is not None:
            result = await self._run_warm(idle, spec, on_output, cancel, on_bound)
            if result is not None:
                return result
        return await self._run_cold(spec, on_output, cancel, on_bound)

    async def _run_cold(
        self, spec: RunSpec, on_output: OutputSink, cancel: asyncio.Event, on_bound: BindSink | None
    ) -> RunResult:
        container_id: str | None = None
        # the create call runs on a thread and finishes even if this task is cancelled (a
        # shutdown); it is shielded so its container id is never lost, and so never leaked
        self._cold_inflight += 1
        create = asyncio.ensure_future(self._call(self._create, spec.image, spec, job_labels(spec)))
        try:
            t0 = time.monotonic()
            try:
                container_id = await asyncio.shield(create)
            finally:
                self._cold_inflight -= 1
                self._wake_refill()  # refills waited for this create
            if on_bound is not None:
                await on_bound(container_id)
            sock = await self._call(self._attach, container_id)
            reader = self._start_reader(sock, on_output)
            await self._call(self._start, container_id)
            exited = await self._call(self._watch_exit, container_id, spec.timeout_s)
            await self._call(_send_stdin, sock, spec.envelope)
            return await self._finish(
                container_id, spec, cancel, reader, exited, time.monotonic() - t0
            )
        except ExecutorError:
            raise
        except Exception as exc:
            raise _translate(exc, "container run failed") from exc
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
    ) -> RunResult | None:
        """The attempt in a prewarmed container; None when the container died in the pool
        before the job reached it (the attempt then goes cold)."""
        t0 = time.monotonic()
        try:
            if on_bound is not None:
                await on_bound(idle.container_id)  # stored before the envelope is sent
            try:
                # registered before the job arrives: the container removes itself on exit
                exited = await self._call(self._watch_exit, idle.container_id, spec.timeout_s)
                reader = self._start_reader(idle.handle, on_output)
                await self._call(_send_stdin, idle.handle, spec.envelope)
            except (OSError, docker.errors.NotFound):
                log.warning("warm_handover_failed", container_id=idle.container_id)
                return None
            handover_s = time.monotonic() - t0
            self._handover_s.append(handover_s)
            return await self._finish(idle.container_id, spec, cancel, reader, exited, handover_s)
        except ExecutorError:
            raise
        except Exception as exc:
            raise _translate(exc, "container run failed") from exc
        finally:
            self._reap(idle.container_id)

    async def _finish(
        self,
        container_id: str,
        spec: RunSpec,
        cancel: asyncio.Event,
        reader: asyncio.Future[None],
        exited: requests.Response,
        start_latency_s: float,
    ) -> RunResult:
        """From the envelope sent to the result known; teardown is not on this path."""
        exit_code, timed_out, cancelled = await self._wait(container_id, spec, cancel, exited)
        await asyncio.wait_for(asyncio.shield(reader), timeout=10)
        oom = await self._call(self._oom_killed, container_id)
        if oom is None:  # a prewarmed container removes itself once it exits
            oom = exit_code == 137 and not (timed_out or cancelled)
        return RunResult(
            exit_code=exit_code,
            timed_out=timed_out,
            cancelled=cancelled,
            oom_killed=oom,
            container_id=container_id,
            start_latency_s=start_latency_s,
        )

    async def _wait(
        self, container_id: str, spec: RunSpec, cancel: asyncio.Event, exited: requests.Response
    ) -> tuple[int | None, bool, bool]:
        waiter = asyncio.ensure_future(self._call(_exit_status, exited))
        cancelled = asyncio.ensure_future(cancel.wait())
        done, _ = await asyncio.wait(
            {waiter, cancelled}, timeout=spec.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        cancelled.cancel()
        if waiter in done:
            return int(waiter.result().get("StatusCode", -1)), False, False
        was_cancelled = cancel.is_set()
        await self._call(self._kill, container_id)
        try:
            status = await asyncio.wait_for(waiter, timeout=30)
            code: int | None = int(status.get("StatusCode", -1))
        except (TimeoutError, requests.exceptions.RequestException):
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
            for idle in self._warm.expired():
                self._reap(idle.container_id, idle.handle)
            try:
                await self._refill()
            except Exception as exc:  # the engine went away: the pool waits for it
                log.warning("warm_refill_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(2.0)

    async def _refill(self) -> None:
        # one container at a time, and only while no attempt is creating one: jobs go first
        while self._cold_inflight == 0 and (shape := self._warm.wanted()) is not None:
            self._warm.creating(shape, +1)
            try:
                idle = await asyncio.shield(self._call(self._prewarm, shape))
            finally:
                self._warm.creating(shape, -1)
            self._warm.put(idle)

    def _prewarm(self, shape: Shape) -> Idle:
        """Created, attached and started: the shim blocks on stdin, holding nothing."""
        ttl = f"{self._warm.settings.idle_ttl_s:g}"
        container_id = self._create(
            shape.image, shape, {POOL_LABEL: "1"}, env={WARM_TTL_ENV: ttl}, auto_remove=True
        )
        try:
            sock = self._attach(container_id)
            self._start(container_id)
        except Exception:
            with contextlib.suppress(docker.errors.APIError):
                self._api().remove_container(container_id, force=True)
            raise
        return Idle(container_id, shape, time.monotonic(), sock)

    def pool_stats(self) -> dict[str, Any]:
        stats = self._warm.stats()
        handover = sorted(self._handover_s)
        stats["handover_ms_p50"] = (
            round(handover[len(handover) // 2] * 1000, 2) if handover else None
        )
        return stats

    def _reap(self, container_id: str, sock: Any = None) -> None:
        """Removes a container off the attempt's critical path; close() waits for these."""
        if sock is not None:
            _close_quietly(sock)
        task = asyncio.ensure_future(self.kill_and_remove(container_id))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    def _start_reader(self, sock: Any, on_output: OutputSink) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for stream_id, data in frames_iter(sock, tty=False):
                    if data:
                        loop.call_soon_threadsafe(
                            on_output, _STREAMS.get(stream_id, "stdout"), data
                        )
            except OSError:
                pass  # the container went away; what was read is kept
            finally:
                _close_quietly(sock)

        return loop.run_in_executor(self._pool, pump)

    # -- blocking SDK calls (run on the pool) -----------------------------------------------

    @_engine_retry
    def _create(
        self,
        image: str,
        shape: RunSpec | Shape,
        labels: dict[str, str],
        *,
        env: dict[str, str] | None = None,
        auto_remove: bool = False,
    ) -> str:
        """A container with every hardening option. `network: none` is networking disabled
        in the container config: only loopback, no route out, like `network_mode: none`, and
        faster to create."""
        api = self._api()
        host_config = api.create_host_config(
            mem_limit=f"{shape.memory_mb}m",
            memswap_limit=f"{shape.memory_mb}m",  # same as memory: no swap
            nano_cpus=int(shape.cpus * 1e9),
            pids_limit=PIDS_LIMIT,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_MB}m"},
            network_mode="bridge" if shape.network_enabled else None,
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
            ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
            auto_remove=auto_remove,
        )
        config = api.create_container_config(
            image=image,
            command=None,
            user=SHIM_USER,
            stdin_open=True,
            environment=env or {},
            network_disabled=not shape.network_enabled,
            labels={MANAGED_LABEL: "1", PLATFORM_LABEL: self._platform_id, **labels},
            host_config=host_config,
        )
        # stdin closes when our attach half-closes, so the shim sees EOF after the envelope
        config["StdinOnce"] = True
        config["AttachStdin"] = True
        created = api.create_container_from_config(config)
        return str(created["Id"])

    def _watch_exit(self, container_id: str, timeout_s: float) -> requests.Response:
        """A wait for the container's next exit, registered with the engine when this returns
        (it answers the headers first, the exit status when it happens): an exit that comes
        right after, and the self-removal of a prewarmed container, cannot be missed."""
        api = self._api()
        url = api._url("/containers/{0}/wait", container_id)
        res: requests.Response = api._post(
            url, params={"condition": "next-exit"}, timeout=timeout_s + 60, stream=True
        )
        api._raise_for_status(res)
        return res

    def _attach(self, container_id: str) -> Any:
        return self._api().attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )

    @_engine_retry
    def _start(self, container_id: str) -> None:
        self._api().start(container_id)

    def _kill(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.APIError):  # already stopped
            self._api().kill(container_id)

    def _oom_killed(self, container_id: str) -> bool | None:
        """None when the container is already gone (a prewarmed one removes itself)."""
        try:
            state = self._api().inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            return False
        return bool(state.get("OOMKilled"))

    # -- housekeeping ----------------------------------------------------------------------

    async def kill_and_remove(self, container_id: str) -> None:
        """Never raises: teardown must not mask the attempt's own outcome."""
        for delay in (0.0, 0.2, 1.0):
            await asyncio.sleep(delay)
            try:
                await self._call(self._api().remove_container, container_id, force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in str(exc):
                    return  # a prewarmed container removing itself
                log.warning("container_remove_failed", container_id=container_id, error=str(exc))
            except Exception as exc:
                log.warning("container_remove_failed", container_id=container_id, error=str(exc))

    async def list_containers(self) -> list[ContainerRef]:
        try:
            rows = await self._call(
                self._api().containers,
                all=True,
                filters={"label": [f"{MANAGED_LABEL}=1", f"{PLATFORM_LABEL}={self._platform_id}"]},
            )
        except Exception as exc:
            raise _translate(exc, "cannot list containers") from exc
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
            await self._call(self._api().inspect_image, image)
        except docker.errors.ImageNotFound:
            return False
        except Exception as exc:
            raise _translate(exc, "cannot inspect image") from exc
        return True

    async def ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self._call(self._api().ping), timeout=3))
        except Exception:
            return False

    async def close(self) -> None:
        if self._refiller is not None:
            self._refiller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refiller
        for idle in self._warm.drain():
            self._reap(idle.container_id, idle.handle)
        if self._reaping:
            await asyncio.wait(set(self._reaping), timeout=30)
        if self._client is not None:
            self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _created_id(create: asyncio.Future[str]) -> str | None:
    """The id of a container whose creation was still in flight when the attempt ended."""
    try:
        return await asyncio.wait_for(asyncio.shield(create), timeout=60)
    except Exception:
        return None  # creation failed or hung: there is nothing to remove


def _exit_status(res: requests.Response) -> dict[str, Any]:
    try:
        return dict(res.json())
    finally:
        res.close()


def _send_stdin(sock: Any, data: bytes) -> None:
    raw = getattr(sock, "_sock", sock)
    raw.sendall(data if data.endswith(b"\n") else data + b"\n")
    # half-close: the engine then closes the container's stdin, so the shim sees EOF
    raw.shutdown(socket.SHUT_WR)


def _close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
