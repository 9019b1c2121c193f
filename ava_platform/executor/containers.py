"""The container engine's blocking calls, one small seam: every one runs on the executor's
thread pool, never on the event loop; tenacity retries only transient engine errors."""

from __future__ import annotations

import contextlib
import select
from typing import Any

import docker
import docker.errors
import requests
from docker.types import LogConfig
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ava_platform.errors import ExecutorError, ImageMissing
from ava_platform.executor.base import RunSpec
from ava_platform.executor.egress import EgressGuard
from ava_platform.executor.engine import engine_client
from ava_platform.executor.sandbox_spec import hardening
from ava_platform.executor.warm import Idle, Shape

SHIM_USER = "10001:10001"
MANAGED_LABEL = "ava.managed"
PLATFORM_LABEL = "ava.platform_id"
POOL_LABEL = "ava.pool"  # a prewarmed container: no job's until one takes it


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


def translate(exc: Exception, what: str) -> ExecutorError:
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageMissing(f"image missing: {exc.explanation or exc}")
    return ExecutorError(f"{what}: {type(exc).__name__}: {exc}")


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
        self._egress = egress or EgressGuard(base_url)

    def api(self) -> docker.APIClient:
        if self._client is None:
            self._client = engine_client(self._base_url).api
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @_engine_retry
    def create(
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
        if shape.network_enabled:
            self._require_egress()
        api = self.api()
        host_config = api.create_host_config(
            **hardening(shape, auto_remove=auto_remove),
            # the output comes over the attach stream; the engine keeping a copy on disk too
            # was a third of its CPU for a chatty job, and the container is removed anyway
            log_config=LogConfig(type="none"),
            ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=1024)],
        )
        config = api.create_container_config(
            image=image,
            command=None,
            user=SHIM_USER,
            stdin_open=True,
            environment=env or {},
            network_disabled=not shape.network_enabled,
            labels={MANAGED_LABEL: "1", PLATFORM_LABEL: self.platform_id, **labels},
            host_config=host_config,
        )
        # stdin closes when our attach half-closes, so the shim sees EOF after the envelope
        config["StdinOnce"] = True
        config["AttachStdin"] = True
        created = api.create_container_from_config(config)
        return str(created["Id"])

    def _require_egress(self) -> None:
        """An egress container only on the managed network with its rules in place."""
        status = self._egress.prepare()
        if not status.ready:
            raise ExecutorError(
                f"egress jobs are refused: {status.reason}", code="egress_unavailable"
            )

    def watch_exit(self, container_id: str, timeout_s: float) -> requests.Response:
        """A wait for the container's next exit, registered with the engine when this returns
        (it answers the headers first, the exit status when it happens): an exit that comes
        right after, and the self-removal of a prewarmed container, cannot be missed."""
        api = self.api()
        url = api._url("/containers/{0}/wait", container_id)
        res: requests.Response = api._post(
            url, params={"condition": "next-exit"}, timeout=timeout_s + 60, stream=True
        )
        api._raise_for_status(res)
        return res

    def attach(self, container_id: str) -> Any:
        return self.api().attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )

    @_engine_retry
    def start(self, container_id: str) -> None:
        self.api().start(container_id)

    def kill(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.APIError):  # already stopped
            self.api().kill(container_id)

    def oom_killed(self, container_id: str) -> bool | None:
        """None when the container is already gone (a prewarmed one removes itself)."""
        try:
            state = self.api().inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError:
            return False
        return bool(state.get("OOMKilled"))

    def remove(self, container_id: str) -> None:
        self.api().remove_container(container_id, force=True)

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


def exit_status(res: requests.Response) -> dict[str, Any]:
    try:
        return dict(res.json())
    finally:
        res.close()


def close_quietly(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()
