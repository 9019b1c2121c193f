"""The container engine's calls, one small seam: those on every job's path go over the
engine's HTTP API from the loop (executor/engine_api.py); the rare ones (listing, images, a
ping) are the SDK's blocking calls, run on the executor's thread pool. tenacity retries only
transient engine errors."""

from __future__ import annotations

import asyncio
import contextlib
import select
from typing import Any

import aiohttp
import docker
import docker.errors
from docker.types import ContainerConfig, HostConfig, LogConfig, Ulimit
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ava_platform.errors import ExecutorError, ImageMissing
from ava_platform.executor.base import RunSpec
from ava_platform.executor.egress import EgressGuard
from ava_platform.executor.engine import API_VERSION, engine_client
from ava_platform.executor.engine_api import EngineAPI, EngineNotFound, EngineRefused
from ava_platform.executor.sandbox_spec import hardening
from ava_platform.executor.warm import Idle, Shape

SHIM_USER = "10001:10001"
MANAGED_LABEL = "ava.managed"
PLATFORM_LABEL = "ava.platform_id"
POOL_LABEL = "ava.pool"  # a prewarmed container: no job's until one takes it
ATTACH_ALL = {"stdin": "1", "stdout": "1", "stderr": "1", "stream": "1"}


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, aiohttp.ClientConnectionError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, EngineRefused) and not isinstance(exc, EngineNotFound):
        return exc.status >= 500
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


def translate(exc: Exception, what: str) -> ExecutorError:
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageMissing(f"image missing: {exc.explanation or exc}")
    return ExecutorError(f"{what}: {type(exc).__name__}: {exc}")


def container_config(
    image: str,
    shape: RunSpec | Shape,
    labels: dict[str, str],
    *,
    platform_id: str,
    env: dict[str, str] | None = None,
    auto_remove: bool = False,
) -> dict[str, Any]:
    """The create call's body, every hardening option in it (the SDK's own builders, so the
    engine reads exactly what the SDK would send). `network: none` is networking disabled in
    the container config: only loopback, no route out, like `network_mode: none`, and faster
    to create."""
    host_config = HostConfig(
        version=API_VERSION,
        **hardening(shape, auto_remove=auto_remove),
        # the output comes over the attach stream; the engine keeping a copy on disk too
        # was a third of its CPU for a chatty job, and the container is removed anyway
        log_config=LogConfig(type="none"),
        ulimits=[Ulimit(name="nofile", soft=1024, hard=1024)],
    )
    config = ContainerConfig(
        API_VERSION,
        image=image,
        command=None,
        user=SHIM_USER,
        stdin_open=True,
        environment=env or {},
        network_disabled=not shape.network_enabled,
        labels={MANAGED_LABEL: "1", PLATFORM_LABEL: platform_id, **labels},
        host_config=host_config,
    )
    # stdin closes when our attach half-closes, so the shim sees EOF after the envelope
    config["StdinOnce"] = True
    config["AttachStdin"] = True
    return dict(config)


class Containers:
    """Create, attach, start, watch, kill and inspect containers of one platform."""

    def __init__(
        self, platform_id: str, base_url: str | None, egress: EgressGuard | None = None
    ) -> None:
        # containers carry the id of the platform that made them, so two platforms sharing an
        # engine (a dev server beside a test run) never sweep up each other's containers
        self.platform_id = platform_id
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._http = EngineAPI(base_url)
        self._egress = egress or EgressGuard(base_url)

    def api(self) -> docker.APIClient:
        """The SDK's client, for the blocking calls (run them on a thread)."""
        if self._client is None:
            self._client = engine_client(self._base_url).api
        return self._client

    async def close(self) -> None:
        await self._http.close()
        if self._client is not None:
            self._client.close()

    @_engine_retry
    async def create(
        self,
        image: str,
        shape: RunSpec | Shape,
        labels: dict[str, str],
        *,
        env: dict[str, str] | None = None,
        auto_remove: bool = False,
    ) -> str:
        if shape.network_enabled:
            await self._require_egress()
        body = container_config(
            image, shape, labels, platform_id=self.platform_id, env=env, auto_remove=auto_remove
        )
        try:
            created = await self._http.call("POST", "/containers/create", body=body)
        except EngineNotFound as exc:
            raise ImageMissing(f"image missing: {exc.message}") from exc
        return str(created["Id"])

    async def _require_egress(self) -> None:
        """An egress container only on the managed network with its rules in place."""
        status = await asyncio.to_thread(self._egress.prepare)
        if not status.ready:
            raise ExecutorError(
                f"egress jobs are refused: {status.reason}", code="egress_unavailable"
            )

    async def watch_exit(self, container_id: str) -> aiohttp.ClientResponse:
        """A wait for the container's next exit, registered with the engine when this returns
        (it answers the headers first, the exit status when it happens): an exit that comes
        right after, and the self-removal of a prewarmed container, cannot be missed."""
        return await self._http.wait(container_id)

    async def attach(self, container_id: str) -> Any:
        return await self._http.hijack(f"/containers/{container_id}/attach", ATTACH_ALL)

    @_engine_retry
    async def start(self, container_id: str) -> None:
        await self._http.call("POST", f"/containers/{container_id}/start")

    async def kill(self, container_id: str) -> None:
        with contextlib.suppress(EngineRefused):  # already stopped, or gone
            await self._http.call("POST", f"/containers/{container_id}/kill")

    async def oom_killed(self, container_id: str) -> bool | None:
        """None when the container is already gone (a prewarmed one removes itself)."""
        try:
            state = (await self._http.call("GET", f"/containers/{container_id}/json"))["State"]
        except EngineNotFound:
            return None
        except EngineRefused:
            return False
        return bool(state.get("OOMKilled"))

    async def remove(self, container_id: str) -> None:
        await self._http.call("DELETE", f"/containers/{container_id}", params={"force": "1"})

    def has_image(self, image: str) -> bool:
        try:
            self.api().inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        return True

    def managed(self) -> list[dict[str, Any]]:
        labels = [f"{MANAGED_LABEL}=1", f"{PLATFORM_LABEL}={self.platform_id}"]
        return list(self.api().containers(all=True, filters={"label": labels}))


def shim_gone(idle: Idle) -> bool:
    """An idle shim writes nothing before its job: a readable attach socket means it ended
    (its TTL, or the engine went away and closed the stream)."""
    raw = getattr(idle.handle, "_sock", idle.handle)
    try:
        readable, _, _ = select.select([raw], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


async def exit_status(res: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        return dict(await res.json(content_type=None))
    finally:
        res.close()


def close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
