"""The Docker implementation of the Executor: the only module of the platform that runs
containers. Every blocking SDK call runs on a dedicated thread pool, never on the event loop;
tenacity retries only transient engine errors; every container is killed and removed when its
attempt ends, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
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
from ava_platform.executor.base import ContainerRef, OutputSink, RunResult, RunSpec
from ava_platform.executor.engine import engine_client
from ava_platform.log import get_logger

log = get_logger("ava.executor")
T = TypeVar("T")
SHIM_USER = "10001:10001"
MANAGED_LABEL = "ava.managed"
PLATFORM_LABEL = "ava.platform_id"
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


def _translate(exc: Exception, what: str) -> ExecutorError:
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageMissing(f"image missing: {exc.explanation or exc}")
    return ExecutorError(f"{what}: {type(exc).__name__}: {exc}")


class DockerExecutor:
    def __init__(
        self, *, platform_id: str = "default", base_url: str | None = None, max_threads: int = 128
    ) -> None:
        # containers carry the id of the platform that made them, so two platforms sharing an
        # engine (a dev server beside a test run) never sweep up each other's containers
        self._platform_id = platform_id
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="ava-docker")

    def _api(self) -> docker.APIClient:
        if self._client is None:
            self._client = engine_client(self._base_url).api
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    # -- the life of one attempt -------------------------------------------------------------

    async def run(self, spec: RunSpec, on_output: OutputSink, cancel: asyncio.Event) -> RunResult:
        container_id: str | None = None
        # the create call runs on a thread and finishes even if this task is cancelled (a
        # shutdown); it is shielded so its container id is never lost, and so never leaked
        create = asyncio.ensure_future(self._call(self._create, spec))
        try:
            t0 = time.monotonic()
            container_id = await asyncio.shield(create)
            sock = await self._call(self._attach, container_id)
            reader = self._start_reader(sock, on_output)
            await self._call(self._start, container_id)
            started = time.monotonic()
            await self._call(_send_stdin, sock, spec.envelope)
            exit_code, timed_out, cancelled = await self._wait(container_id, spec, cancel)
            await asyncio.wait_for(asyncio.shield(reader), timeout=10)
            oom = await self._call(self._oom_killed, container_id)
            return RunResult(
                exit_code=exit_code,
                timed_out=timed_out,
                cancelled=cancelled,
                oom_killed=oom,
                container_id=container_id,
                start_latency_s=started - t0,
            )
        except ExecutorError:
            raise
        except Exception as exc:
            raise _translate(exc, "container run failed") from exc
        finally:
            if container_id is None:
                container_id = await _created_id(create)
            if container_id is not None:
                await self.kill_and_remove(container_id)

    async def _wait(
        self, container_id: str, spec: RunSpec, cancel: asyncio.Event
    ) -> tuple[int | None, bool, bool]:
        waiter = asyncio.ensure_future(
            self._call(self._api().wait, container_id, timeout=spec.timeout_s + 60)
        )
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
    def _create(self, spec: RunSpec) -> str:
        api = self._api()
        host_config = api.create_host_config(
            mem_limit=f"{spec.memory_mb}m",
            memswap_limit=f"{spec.memory_mb}m",  # same as memory: no swap
            nano_cpus=int(spec.cpus * 1e9),
            pids_limit=spec.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={spec.tmpfs_mb}m"},
            network_mode="bridge" if spec.network_enabled else "none",
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "1"}),
            ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
        )
        config = api.create_container_config(
            image=spec.image,
            command=None,
            user=SHIM_USER,
            stdin_open=True,
            environment={},
            labels={
                MANAGED_LABEL: "1",
                PLATFORM_LABEL: self._platform_id,
                "ava.job_id": spec.job_id,
                "ava.tenant_id": spec.tenant_id,
                "ava.worker_id": spec.worker_id,
                "ava.attempt": str(spec.attempt),
            },
            host_config=host_config,
        )
        # stdin closes when our attach half-closes, so the shim sees EOF after the envelope
        config["StdinOnce"] = True
        config["AttachStdin"] = True
        created = api.create_container_from_config(config)
        return str(created["Id"])

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

    def _oom_killed(self, container_id: str) -> bool:
        try:
            state = self._api().inspect_container(container_id)["State"]
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
        if self._client is not None:
            self._client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


async def _created_id(create: asyncio.Future[str]) -> str | None:
    """The id of a container whose creation was still in flight when the attempt ended."""
    try:
        return await asyncio.wait_for(asyncio.shield(create), timeout=60)
    except Exception:
        return None  # creation failed or hung: there is nothing to remove


def _send_stdin(sock: Any, data: bytes) -> None:
    raw = getattr(sock, "_sock", sock)
    raw.sendall(data if data.endswith(b"\n") else data + b"\n")
    # half-close: the engine then closes the container's stdin, so the shim sees EOF
    raw.shutdown(socket.SHUT_WR)


def _close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
