"""Swarm services, one small seam: the blocking engine calls of the swarm executor (each runs
on its thread pool, never on the event loop). An attempt is one service in `replicated-job`
mode with its envelope in one swarm secret; both carry the platform's labels, so a restarted
platform finds and removes what it left behind.

What maps from a local container (executor/containers.py) and what cannot, on API 1.41:
memory, cpus, pids, nofile, read-only root, uid 10001, no capabilities, the log cap: as local.
/tmp is a 64 MiB tmpfs, but `noexec` (a service's tmpfs takes no mount flags before API 1.46).
No swap limit exists for services (memory-swap is the engine's default). `no-new-privileges`
cannot be set on a service (NoNewPrivs is 0): the user is non-root with no capabilities.
`network: none` cannot be given to a task (the `none` network is not attachable): such a task
joins an internal overlay network with no route out instead (see `none_network`).
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import docker
import docker.errors
import requests

from ava_platform.errors import ImageMissing
from ava_platform.executor.base import RunSpec
from ava_platform.executor.containers import (
    MANAGED_LABEL,
    PLATFORM_LABEL,
    SHIM_USER,
    job_labels,
)
from ava_platform.executor.engine import engine_client
from ava_platform.executor.sandbox_spec import PIDS_LIMIT, TMPFS_MB

SERVICE_LABEL = "ava.service"  # on an envelope secret: the name of its attempt's service
ENVELOPE_FILE_ENV = "AVA_ENVELOPE_FILE"
SECRET_MAX_BYTES = 500 * 1024 - 1  # the swarm holds a secret of less than 500 KiB
SHIM_UID = SHIM_USER.split(":")[0]
# a task's states after which it never runs again
TERMINAL = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
STARTED = frozenset({"running"}) | TERMINAL


class Services:
    """Create, watch, read and remove the services and secrets of one platform."""

    def __init__(
        self, platform_id: str, base_url: str | None, constraints: tuple[str, ...] = ()
    ) -> None:
        self.platform_id = platform_id
        self.constraints = constraints
        self._base_url = base_url
        self._client: docker.APIClient | None = None
        self._none_network: str | None = None

    def api(self) -> docker.APIClient:
        if self._client is None:
            self._client = engine_client(self._base_url).api
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _labels(self, extra: dict[str, str]) -> dict[str, str]:
        return {MANAGED_LABEL: "1", PLATFORM_LABEL: self.platform_id, **extra}

    def is_manager(self) -> bool:
        swarm = self.api().info().get("Swarm") or {}
        return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))

    def image_id(self, image: str) -> str:
        """The image's content id: a task given an id never tries a registry (none may be
        reachable) and runs the very image the manager has; every node needs it loaded."""
        try:
            return str(self.api().inspect_image(image)["Id"])
        except docker.errors.ImageNotFound as exc:
            raise ImageMissing(f"image missing: {image}") from exc

    def none_network(self) -> str:
        """The platform's internal overlay network: no gateway, so no route out of the
        cluster, and no name resolution beyond it. Tasks on it can reach each other, which a
        local `network: none` container cannot (its only interface is loopback)."""
        if self._none_network is not None:
            return self._none_network
        name = f"ava-none-{self.platform_id}"
        found = self.api().networks(names=[name])
        if found:
            self._none_network = str(found[0]["Id"])
        else:
            created = self.api().create_network(
                name,
                driver="overlay",
                internal=True,
                check_duplicate=True,
                labels=self._labels({}),
            )
            self._none_network = str(created["Id"])
        return self._none_network

    def create_secrets(self, service_name: str, envelope: bytes) -> list[tuple[str, str]]:
        """(id, name) of the secrets holding the envelope in order, SECRET_MAX_BYTES each at
        most (a 1 MiB input needs three); their names and labels say nothing of what is in
        them. A failure part way removes those already made."""
        labels = self._labels({SERVICE_LABEL: service_name})
        made: list[tuple[str, str]] = []
        try:
            for i, at in enumerate(range(0, max(1, len(envelope)), SECRET_MAX_BYTES)):
                name = f"{service_name}-env" + (f"-{i}" if i else "")
                chunk = envelope[at : at + SECRET_MAX_BYTES]
                created = self.api().create_secret(name, chunk, labels=labels)
                made.append((str(created["ID"]), name))
        except Exception:
            for secret_id, _ in made:
                self.remove_secret(secret_id)
            raise
        return made

    def create(
        self,
        name: str,
        spec: RunSpec,
        image_id: str,
        secrets: list[tuple[str, str]],
        network_id: str | None,
    ) -> str:
        body = {
            "Name": name,
            "Labels": self._labels(job_labels(spec)),
            "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
            "TaskTemplate": task_template(
                spec, image_id, secrets, network_id, self._labels(job_labels(spec))
            )
            | {"Placement": {"Constraints": list(self.constraints)}},
        }
        api = self.api()
        res = api._post_json(api._url("/services/create"), data=body)
        return str(api._result(res, json=True)["ID"])

    def task(self, service_id: str) -> dict[str, Any] | None:
        tasks = self.api().tasks(filters={"service": service_id})
        return dict(tasks[0]) if tasks else None

    def logs(self, service_id: str) -> requests.Response:
        """The task's stdout and stderr as they are written, multiplexed as a container's."""
        api = self.api()
        url = api._url("/services/{0}/logs", service_id)
        params = {"follow": 1, "stdout": 1, "stderr": 1}
        res: requests.Response = api._get(url, params=params, stream=True, timeout=None)
        api._raise_for_status(res)
        return res

    def oom_killed(self, task: dict[str, Any]) -> bool | None:
        """None when the task's container is not on this engine (it ran on another node)."""
        container_id = (task.get("Status") or {}).get("ContainerStatus", {}).get("ContainerID")
        if not container_id:
            return None
        try:
            state = self.api().inspect_container(container_id)["State"]
        except docker.errors.APIError:
            return None
        return bool(state.get("OOMKilled"))

    def remove(self, service_id: str) -> None:
        """The service (its task is killed: stop signal SIGKILL) and then its secrets."""
        api = self.api()
        try:
            spec = api.inspect_service(service_id)["Spec"]
        except docker.errors.NotFound:
            return
        secret_ids = [
            s["SecretID"] for s in spec["TaskTemplate"]["ContainerSpec"].get("Secrets") or []
        ]
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_service(service_id)
        for secret_id in secret_ids:
            self.remove_secret(secret_id)

    def remove_secret(self, secret_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api().remove_secret(secret_id)

    def managed(self) -> list[dict[str, Any]]:
        labels = [f"{MANAGED_LABEL}=1", f"{PLATFORM_LABEL}={self.platform_id}"]
        return list(self.api().services(filters={"label": labels}))

    def orphan_secrets(self) -> list[str]:
        """Ids of this platform's envelope secrets whose service does not exist (the platform
        died between creating the secret and the service)."""
        labels = [f"{MANAGED_LABEL}=1", f"{PLATFORM_LABEL}={self.platform_id}"]
        names = {s["Spec"]["Name"] for s in self.managed()}
        return [
            str(s["ID"])
            for s in self.api().secrets(filters={"label": labels})
            if s["Spec"].get("Labels", {}).get(SERVICE_LABEL) not in names
        ]


def service_name(spec: RunSpec) -> str:
    # unique per attempt: a retry of the same attempt number (after a crash) never collides
    return f"ava-{spec.job_id}-{spec.attempt}-{secrets.token_hex(3)}".replace("_", "-")


def task_template(
    spec: RunSpec,
    image_id: str,
    secrets: list[tuple[str, str]],
    network_id: str | None,
    labels: dict[str, str],
) -> dict[str, Any]:
    # the shim reads the files in this order, one after the other (runtimes/README.md)
    files = ":".join(f"/run/secrets/{name}" for _, name in secrets)
    container = {
        "Image": image_id,
        "User": SHIM_USER,
        "Env": [f"{ENVELOPE_FILE_ENV}={files}"],
        "Labels": labels,
        "ReadOnly": True,
        "CapabilityDrop": ["ALL"],
        "StopSignal": "SIGKILL",  # removal kills at once, as a local timeout or cancel does
        "StopGracePeriod": 0,
        "Mounts": [
            {
                "Type": "tmpfs",
                "Target": "/tmp",
                "TmpfsOptions": {"SizeBytes": TMPFS_MB * 1024 * 1024, "Mode": 0o1777},
            }
        ],
        "Secrets": [
            {
                "File": {"Name": name, "UID": SHIM_UID, "GID": SHIM_UID, "Mode": 0o400},
                "SecretID": secret_id,
                "SecretName": name,
            }
            for secret_id, name in secrets
        ],
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 1024}],
    }
    return {
        "ContainerSpec": container,
        "Resources": {
            "Limits": {
                "NanoCPUs": int(spec.cpus * 1e9),
                "MemoryBytes": spec.memory_mb * 1024 * 1024,
                "Pids": PIDS_LIMIT,
            }
        },
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        # egress: the network the operator firewalled (executor/swarm_egress.py), or none:
        # the node's default bridge, when the operator said `bridge`
        "Networks": [] if network_id is None else [{"Target": network_id}],
        "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "1"}},
    }
