"""The Docker Swarm implementation of the Executor (`AVA_EXECUTOR=swarm`): each attempt is one
service in `replicated-job` mode (one task, never restarted), placed by the swarm on any node
that has the image. A service has no stdin, so the envelope travels as swarm secrets made for
the attempt (500 KiB each at most: one, or three for a 1 MiB input), mounted under
/run/secrets/ (AVA_ENVELOPE_FILE names them in order), and removed with the service.
Engine calls (executor/services.py) run on a dedicated thread pool; the task's state is polled
(the manager has no wait for a service) and its output streamed from the service's logs.

No warm pool: a prewarmed task would need its envelope after it starts, and a secret cannot be
added to a running task; every attempt is cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests

from ava_platform.errors import AvaError, ExecutorError, ImageMissing
from ava_platform.executor.base import BindSink, ContainerRef, OutputSink, RunResult, RunSpec
from ava_platform.executor.containers import close_quietly, translate
from ava_platform.executor.services import (
    STARTED,
    TERMINAL,
    Services,
    service_name,
)
from ava_platform.executor.swarm_egress import SwarmEgress
from ava_platform.log import get_logger

log = get_logger("ava.executor.swarm")
T = TypeVar("T")
START_LIMIT_S = 120.0  # from the service created to its task running (placement, image)
POLL_S = 0.1  # how often a running attempt's task state is read
LOG_DRAIN_S = 2.0  # after the task ended, how long its last lines may take to arrive
SECRET_REF = "secret:"  # a ContainerRef of an orphan envelope secret, not of a service
_STREAMS = {1: "stdout", 2: "stderr"}


class SwarmExecutor:
    def __init__(
        self,
        *,
        platform_id: str = "default",
        base_url: str | None = None,
        constraints: tuple[str, ...] = (),
        max_threads: int = 64,
        egress: SwarmEgress | None = None,
    ) -> None:
        self._engine = Services(platform_id, base_url, constraints)
        self._egress = egress or SwarmEgress(None, base_url)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="ava-swarm")
        self._runs = 0
        self._reaping: set[asyncio.Task[None]] = set()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args))

    # -- the life of one attempt -------------------------------------------------------------

    async def run(
        self,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        on_bound: BindSink | None = None,
        result_seen: asyncio.Event | None = None,
    ) -> RunResult:
        self._runs += 1
        name = service_name(spec)
        t0 = time.monotonic()
        # shielded: a create finishing on its thread after a shutdown is still removed
        create = asyncio.ensure_future(self._call(self._create, name, spec))
        service_id: str | None = None
        try:
            service_id = await asyncio.shield(create)
            if on_bound is not None:
                await on_bound(service_id)
            return await self._follow(service_id, spec, on_output, cancel, result_seen, t0)
        except (AvaError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise translate(exc, "swarm service failed") from exc
        finally:
            if service_id is None:
                service_id = await _created_id(create)
            if service_id is not None:
                self._reap(service_id)

    def _create(self, name: str, spec: RunSpec) -> str:
        image_id = self._engine.image_id(spec.image)
        network_id = (
            self._egress.network_id() if spec.network_enabled else self._engine.none_network()
        )
        secrets = self._engine.create_secrets(name, spec.envelope)
        try:
            return self._engine.create(name, spec, image_id, secrets, network_id)
        except Exception:
            for secret_id, _ in secrets:
                self._engine.remove_secret(secret_id)
            raise

    async def _follow(
        self,
        service_id: str,
        spec: RunSpec,
        on_output: OutputSink,
        cancel: asyncio.Event,
        result_seen: asyncio.Event | None,
        t0: float,
    ) -> RunResult:
        framed = result_seen or asyncio.Event()
        res = await self._call(self._engine.logs, service_id)
        raw = self._engine.api()._get_raw_response_socket(res)
        sock = getattr(raw, "_sock", raw)
        reader = self._start_reader(res, on_output)
        try:
            task, latency_s = await self._until_started(service_id, cancel, t0)
            how = "ended" if task is not None else "cancelled"
            if task is not None and task["Status"]["State"] not in TERMINAL:
                task, how = await self._until_ended(service_id, spec, cancel, framed)
            if how == "framed":
                # the frame and stderr's end marker are the shim's last acts: the output is
                # all in, and the answer does not wait for the swarm to see the task end
                return RunResult(
                    exit_code=None,
                    ended_by_frame=True,
                    container_id=service_id,
                    start_latency_s=latency_s,
                )
            if task is None:  # cancelled or timed out: removing the service kills the task
                await self._call(self._engine.remove, service_id)
                return RunResult(
                    exit_code=None,
                    timed_out=how == "timed_out",
                    cancelled=how == "cancelled",
                    container_id=service_id,
                    start_latency_s=latency_s,
                )
            return await self._ended(service_id, task, framed, reader, latency_s)
        finally:
            # the reader holds the stream's lock: the socket is shut first, so its read ends
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self._pool.submit(close_quietly, res)

    async def _until_started(
        self, service_id: str, cancel: asyncio.Event, t0: float
    ) -> tuple[dict[str, Any] | None, float | None]:
        """The task once it runs (or ended at once); None when cancelled first."""
        deadline = t0 + START_LIMIT_S
        while not cancel.is_set():
            task = await self._call(self._engine.task, service_id)
            state = (task or {}).get("Status", {}).get("State")
            if task is not None and state in STARTED:
                if state == "rejected":
                    raise _rejected(task)
                return task, time.monotonic() - t0
            if time.monotonic() > deadline:
                err = (task or {}).get("Status", {}).get("Err") or state
                raise ExecutorError(f"the swarm task did not start in {START_LIMIT_S:g}s: {err}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), POLL_S)
        return None, None

    async def _until_ended(
        self, service_id: str, spec: RunSpec, cancel: asyncio.Event, framed: asyncio.Event
    ) -> tuple[dict[str, Any] | None, str]:
        """(the ended task or None, how: "ended", "framed", "timed_out" or "cancelled")."""
        deadline = time.monotonic() + spec.timeout_s
        while not cancel.is_set():
            if framed.is_set():
                return None, "framed"
            task = await self._call(self._engine.task, service_id)
            if task is not None and task["Status"]["State"] in TERMINAL:
                return task, "ended"
            if time.monotonic() > deadline:
                return None, "timed_out"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(cancel, framed), POLL_S)
        return None, "cancelled"

    async def _ended(
        self,
        service_id: str,
        task: dict[str, Any],
        framed: asyncio.Event,
        reader: asyncio.Future[None],
        latency_s: float | None,
    ) -> RunResult:
        """The task ended before its frame was read: its last lines may still be on the way."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_either(framed, reader), LOG_DRAIN_S)
        status = task["Status"]
        code = status.get("ContainerStatus", {}).get("ExitCode")
        exit_code = int(code) if code is not None else None
        oom = await self._call(self._engine.oom_killed, task)
        if oom is None:  # it ran on another node: the kernel's OOM kill shows as 137
            oom = exit_code == 137
        return RunResult(
            exit_code=exit_code,
            oom_killed=oom,
            container_id=service_id,
            start_latency_s=latency_s,
        )

    def _start_reader(self, res: requests.Response, on_output: OutputSink) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()

        def pump() -> None:
            try:
                for stream_id, data in demux(res.iter_content(chunk_size=None)):
                    loop.call_soon_threadsafe(on_output, _STREAMS.get(stream_id, "stdout"), data)
            except (OSError, ValueError, AttributeError, requests.exceptions.RequestException):
                pass  # the stream was closed: what was read is kept
            except Exception as exc:  # urllib3's own errors on a closed stream
                log.debug("service_logs_ended", error=type(exc).__name__)

        return loop.run_in_executor(self._pool, pump)

    def _reap(self, service_id: str) -> None:
        """Removes a service off the attempt's critical path; close() waits for these."""
        task = asyncio.ensure_future(self.kill_and_remove(service_id))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    # -- housekeeping ----------------------------------------------------------------------

    async def kill_and_remove(self, container_id: str) -> None:
        """Never raises: teardown must not mask the attempt's own outcome."""
        for delay in (0.0, 0.2, 1.0):
            await asyncio.sleep(delay)
            try:
                if container_id.startswith(SECRET_REF):
                    await self._call(self._engine.remove_secret, container_id[len(SECRET_REF) :])
                else:
                    await self._call(self._engine.remove, container_id)
                return
            except Exception as exc:
                log.warning("service_remove_failed", service_id=container_id, error=str(exc))

    async def list_containers(self) -> list[ContainerRef]:
        """This platform's services, and its envelope secrets whose service is gone."""
        try:
            services = await self._call(self._engine.managed)
            orphans = await self._call(self._engine.orphan_secrets)
        except Exception as exc:
            raise translate(exc, "cannot list services") from exc
        refs = [_ref(row) for row in services]
        return refs + [ContainerRef(SECRET_REF + sid, "", 0, False) for sid in orphans]

    def pool_stats(self) -> dict[str, Any]:
        return {"enabled": False, "executor": "swarm", "hits": 0, "misses": self._runs}

    async def image_exists(self, image: str) -> bool:
        try:
            await self._call(self._engine.image_id, image)
        except AvaError:
            return False
        except Exception as exc:
            raise translate(exc, "cannot inspect image") from exc
        return True

    async def ping(self) -> bool:
        """The engine answers and is a manager of an active swarm."""
        try:
            return await asyncio.wait_for(self._call(self._engine.is_manager), timeout=3)
        except Exception:
            return False

    async def close(self) -> None:
        if self._reaping:
            await asyncio.wait(set(self._reaping), timeout=30)
        self._engine.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(stream id, bytes) frames of a multiplexed log stream: an 8-byte header (stream id,
    3 zero bytes, big-endian length), then the data. The service logs endpoint sends them in
    HTTP chunks that need not line up with the frames, so they are reassembled here."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        while len(pending) >= 8:
            length = int.from_bytes(pending[4:8], "big")
            if len(pending) < 8 + length:
                break
            if length:
                yield pending[0], pending[8 : 8 + length]
            pending = pending[8 + length :]


def _ref(row: dict[str, Any]) -> ContainerRef:
    labels = row.get("Spec", {}).get("Labels", {})
    return ContainerRef(
        container_id=str(row["ID"]),
        job_id=labels.get("ava.job_id", ""),
        attempt=int(labels.get("ava.attempt", "0") or 0),
        running=True,
    )


def _rejected(task: dict[str, Any]) -> ExecutorError:
    err = str(task["Status"].get("Err") or "rejected")
    if "No such image" in err:
        return ImageMissing(f"image missing on the node: {err}")
    return ExecutorError(f"the swarm rejected the task: {err}")


async def _either(*waits: asyncio.Event | asyncio.Future[None]) -> None:
    futures = [
        asyncio.ensure_future(w.wait()) if isinstance(w, asyncio.Event) else w for w in waits
    ]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f, w in zip(futures, waits, strict=True):
            if isinstance(w, asyncio.Event):
                f.cancel()


async def _created_id(create: asyncio.Future[str]) -> str | None:
    """The id of a service whose creation was still in flight when the attempt ended."""
    try:
        return await asyncio.wait_for(asyncio.shield(create), timeout=60)
    except Exception:
        return None  # creation failed or hung: there is nothing to remove
