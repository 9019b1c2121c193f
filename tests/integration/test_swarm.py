"""The swarm executor (AVA_EXECUTOR=swarm) through the real API: every runtime, timeout,
cancel, OOM, secrets, logs while running, `network: none`, recovery after kill -9, and a job
placed on a second node (a second dockerd in a network namespace, joined as a worker)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ava_platform.images import runtime_image_tag
from tests.integration import swarm_cluster as cluster
from tests.integration.conftest import Ava, tenant_ava
from tests.integration.sources import (
    DENO_ECHO,
    NODE_ECHO,
    PY_ECHO,
    PY_MEMORY_HOG,
    PY_SLEEP,
    SHELL_ECHO,
    wasm_echo_b64,
)
from tests.support import headers, process_server, thread_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# the second node holds only the python image: every other test's task stays on the manager
SWARM_ENV = {
    "AVA_EXECUTOR": "swarm",
    "AVA_WARM_POOL": "0",
    "AVA_RETRY_BASE_S": "0.2",
    "AVA_SWARM_CONSTRAINTS": "node.role==manager",
    # the nodes' own bridges, as an operator who firewalled them says (a second node in a
    # netns has no overlay data path to count on); the named-network case has its own test
    "AVA_SWARM_EGRESS_NETWORK": "bridge",
}


class Swarm:
    def __init__(self, manager: cluster.Manager, worker: cluster.Worker | None, why: str) -> None:
        self.manager, self.worker, self.no_worker_reason = manager, worker, why


@pytest.fixture(scope="module")
def swarm(runtime_images: list[str]) -> Iterator[Swarm]:
    """A swarm of the test engine (made and left by this fixture if it was in none) and, where
    this machine allows, a second node; everything is removed afterwards."""
    why = cluster.netns_possible()
    if why is not None:
        with cluster.swarm_manager() as manager:
            yield Swarm(manager, None, why)
        return
    netns = cluster.new_netns_name()
    images = [runtime_image_tag("python")]
    with (
        cluster.veth_pair(netns),
        cluster.swarm_manager(cluster.HOST_IP) as manager,
        contextlib.ExitStack() as stack,
    ):
        try:
            worker = stack.enter_context(cluster.netns_worker(manager, netns, images))
        except cluster.NodeUnavailable as exc:
            yield Swarm(manager, None, str(exc))
            return
        yield Swarm(manager, worker, "")


@pytest.fixture(scope="module")
def swarm_server(swarm: Swarm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with thread_server(tmp_path_factory.mktemp("swarm") / "ava.db", **SWARM_ENV) as url:
        yield url


@pytest.fixture
def ava(swarm_server: str) -> Iterator[Ava]:
    with tenant_ava(swarm_server) as a:
        yield a


def services_of(job_id: str) -> list[str]:
    out = cluster.sh("docker", "service", "ls", "-q", "--filter", f"label=ava.job_id={job_id}")
    return out.split()


def wait_until(pred: Callable[[], Any], timeout_s: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def gone(job_id: str) -> None:
    wait_until(lambda: not services_of(job_id), 30, f"the services of {job_id} are removed")


SOURCES = {
    "python": ("main.py", PY_ECHO),
    "nodejs": ("index.js", NODE_ECHO),
    "deno": ("main.ts", DENO_ECHO),
    "shell": ("main.sh", SHELL_ECHO),
}


@pytest.mark.parametrize("runtime", ["python", "nodejs", "deno", "shell", "wasm"])
def test_a_job_of_every_runtime_runs_as_a_swarm_service(ava: Ava, runtime: str) -> None:
    if runtime == "wasm":
        worker = ava.worker("wasm", wasm_echo_b64(), entrypoint="main.wasm")
        expected: Any = {"echo": "wasm"}
    else:
        entrypoint, source = SOURCES[runtime]
        worker = ava.worker(runtime, source, entrypoint=entrypoint)
        expected = {"echo": {"n": 1}}
    job = ava.run(worker["id"], {"n": 1}, wait=90)
    assert job["status"] == "succeeded", (job["error"], ava.logs(job["id"]))
    assert job["result"] == expected
    gone(job["id"])


def test_a_running_task_is_hardened_and_its_logs_stream_with_no_secret_in_sight(
    ava: Ava,
) -> None:
    value = "sw4rm-s3cret-" + "q" * 12
    assert ava.client.put("/secrets/API_TOKEN", json={"value": value}).status_code == 201
    source = (
        "import os, time\n"
        "def handler(input, env):\n"
        "    print('first line', flush=True)\n"
        "    time.sleep(4)\n"
        "    status = open('/proc/self/status').read().splitlines()\n"
        "    seccomp = [line.split()[1] for line in status if line.startswith('Seccomp')]\n"
        "    nnp = [line.split()[1] for line in status if line.startswith('NoNewPrivs')]\n"
        "    return {'len': len(os.environ['API_TOKEN']), 'seccomp': seccomp, 'nnp': nnp}\n"
    )
    worker = ava.worker("python", source, secrets=["API_TOKEN"], memory_mb=128, cpus=0.5)
    job_id = ava.trigger(worker["id"]).json()["id"]
    wait_until(lambda: "first line" in ava.logs(job_id), 40, "the first line while running")
    assert ava.client.get(f"/jobs/{job_id}").json()["status"] == "running"
    (service_id,) = services_of(job_id)
    service = json.loads(cluster.sh("docker", "service", "inspect", service_id))[0]
    text = json.dumps(service)
    assert value not in text
    task = service["Spec"]["TaskTemplate"]
    spec = task["ContainerSpec"]
    assert spec["User"] == "10001:10001" and spec["ReadOnly"] is True
    assert spec["CapabilityDrop"] == ["ALL"]
    assert spec["Env"] == [f"AVA_ENVELOPE_FILE=/run/secrets/{spec['Secrets'][0]['SecretName']}"]
    assert task["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 128 * 1024 * 1024,
        "Pids": 256,
    }
    assert task["LogDriver"]["Options"] == {"max-size": "10m", "max-file": "1"}
    assert service["Spec"]["Labels"]["ava.job_id"] == job_id
    secret_id = spec["Secrets"][0]["SecretID"]
    secret = json.loads(cluster.sh("docker", "secret", "inspect", secret_id))[0]
    assert value not in json.dumps(secret)
    assert set(secret["Spec"]) == {"Name", "Labels"}  # the engine never shows a secret's data
    job = ava.wait_for(job_id, 60)
    assert job["status"] == "succeeded", job
    # the engine's default profile and ava-seal's filter, stacked (README: Security model);
    # no-new-privileges, which a service cannot ask for, set by the seal itself
    assert job["result"] == {"len": len(value), "seccomp": ["2", "2"], "nnp": ["1"]}
    gone(job_id)
    remaining = cluster.sh("docker", "secret", "ls", "-q", "--filter", f"id={secret_id}")
    assert remaining.split() == [], "the envelope secret is removed with its service"


def test_an_input_of_a_mebibyte_travels_in_several_secrets(ava: Ava) -> None:
    """A swarm secret holds 500 KiB at most: a larger envelope is split over several, read by
    the shim one after the other, and all removed with the service."""
    source = (
        "import time\n"
        "def handler(input, env):\n"
        "    print('started', flush=True)\n"
        "    time.sleep(3)\n"
        "    return {'len': len(input['blob']), 'tail': input['blob'][-3:]}\n"
    )
    worker = ava.worker("python", source)
    blob = "x" * 999_997 + "end"
    job_id = ava.trigger(worker["id"], {"blob": blob}).json()["id"]
    wait_until(
        lambda: (
            "started" in ava.logs(job_id)
            or ava.client.get(f"/jobs/{job_id}").json()["status"] not in ("queued", "running")
        ),
        60,
        "the handler started",
    )
    job = ava.client.get(f"/jobs/{job_id}").json()
    assert "started" in ava.logs(job_id), (
        job["status"],
        job["error"]["message"] if job["error"] else None,
    )
    (service_id,) = services_of(job_id)
    spec = json.loads(cluster.sh("docker", "service", "inspect", service_id))[0]["Spec"]
    container = spec["TaskTemplate"]["ContainerSpec"]
    names = [s["SecretName"] for s in container["Secrets"]]
    assert len(names) == 2, names
    assert container["Env"] == ["AVA_ENVELOPE_FILE=" + ":".join(f"/run/secrets/{n}" for n in names)]
    job = ava.wait_for(job_id, 60)
    assert job["status"] == "succeeded", (job["error"], ava.logs(job_id))
    assert job["result"] == {"len": 1_000_000, "tail": "end"}
    gone(job_id)
    ids = [s["SecretID"] for s in container["Secrets"]]
    for secret_id in ids:
        remaining = cluster.sh("docker", "secret", "ls", "-q", "--filter", f"id={secret_id}")
        assert remaining.split() == [], "every envelope secret is removed with its service"


def test_timeout_removes_the_service(ava: Ava) -> None:
    worker = ava.worker("python", PY_SLEEP, timeout_seconds=2, max_retries=0)
    started = time.monotonic()
    job = ava.run(worker["id"], {"s": 60}, wait=60)
    assert job["status"] == "timed_out", job
    assert time.monotonic() - started < 30
    gone(job["id"])


def test_cancel_removes_the_service(ava: Ava) -> None:
    worker = ava.worker("python", PY_SLEEP, max_retries=0)
    job_id = ava.trigger(worker["id"], {"s": 120}).json()["id"]
    wait_until(lambda: "sleeping" in ava.logs(job_id), 40, "the job runs")
    assert ava.client.post(f"/jobs/{job_id}/cancel").status_code in (200, 202)
    job = ava.wait_for(job_id, 30)
    assert job["status"] == "cancelled", job
    gone(job_id)


def test_out_of_memory_is_reported(ava: Ava) -> None:
    worker = ava.worker("python", PY_MEMORY_HOG, memory_mb=64, max_retries=0)
    job = ava.run(worker["id"], wait=90)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "out_of_memory", job
    gone(job["id"])


def test_egress_is_refused_until_the_operator_names_a_network(swarm: Swarm, tmp_path: Path) -> None:
    env = {k: v for k, v in SWARM_ENV.items() if k != "AVA_SWARM_EGRESS_NETWORK"}
    with thread_server(tmp_path / "ava.db", **env) as url, tenant_ava(url) as ava:
        egress = ava.worker("python", PY_ECHO)  # a worker may be made; its jobs are refused
        resp = ava.trigger(egress["id"], {"n": 1})
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "egress_unavailable"
        assert "AVA_SWARM_EGRESS_NETWORK" in resp.json()["error"]["message"]
        assert ava.client.get("/jobs").json()["meta"]["total"] == 0  # nothing was queued
        offline = ava.worker("python", PY_ECHO, network="none")
        job = ava.run(offline["id"], {"n": 2}, wait=90)
        assert job["status"] == "succeeded", job


def test_egress_tasks_join_the_network_the_operator_named(swarm: Swarm, tmp_path: Path) -> None:
    name = f"ava-test-fw-{uuid.uuid4().hex[:8]}"
    network_id = cluster.sh("docker", "network", "create", "--driver", "overlay", name).strip()
    try:
        env = {**SWARM_ENV, "AVA_SWARM_EGRESS_NETWORK": name}
        with thread_server(tmp_path / "ava.db", **env) as url, tenant_ava(url) as ava:
            worker = ava.worker("python", PY_SLEEP)
            job_id = ava.trigger(worker["id"], {"s": 3}).json()["id"]
            service = wait_until(lambda: services_of(job_id), 40, "the task's service exists")[0]
            spec = json.loads(cluster.sh("docker", "service", "inspect", service))[0]["Spec"]
            targets = [n["Target"] for n in spec["TaskTemplate"]["Networks"]]
            assert targets == [network_id], spec["TaskTemplate"]
            job = ava.wait_for(job_id, 60)
            assert job["status"] == "succeeded", job
            gone(job_id)
    finally:
        # a task's endpoint lingers a moment after its service went
        wait_until(
            lambda: (
                subprocess.run(["docker", "network", "rm", name], capture_output=True).returncode
                == 0
            ),
            30,
            f"network {name} removed",
        )


def test_network_none_has_no_route_out(ava: Ava) -> None:
    source = (
        "def handler(input, env):\n"
        "    rows = open('/proc/net/route').read().splitlines()[1:]\n"
        "    return {'default': any(r.split()[1] == '00000000' for r in rows)}\n"
    )
    worker = ava.worker("python", source, network="none")
    job = ava.run(worker["id"], wait=90)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"default": False}


HANG_ON_FIRST = (
    "import time\n"
    "def handler(input, env):\n"
    "    if env['AVA_ATTEMPT'] == '1':\n"
    "        print('hanging', flush=True)\n"
    "        time.sleep(300)\n"
    "    return {'attempt': int(env['AVA_ATTEMPT'])}\n"
)


def test_kill_9_of_the_platform_then_a_restart_recovers_the_job(
    swarm: Swarm, tmp_path: Path
) -> None:
    db, hdrs = tmp_path / "ava.db", headers()
    with (
        process_server(db, **SWARM_ENV) as (url, proc),
        httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=30) as c,
    ):
        ava = Ava(c)
        worker = ava.worker("python", HANG_ON_FIRST)
        job_id = ava.trigger(worker["id"]).json()["id"]
        wait_until(lambda: "hanging" in ava.logs(job_id), 40, "the first attempt runs")
        proc.kill()  # SIGKILL: no shutdown code runs
        proc.wait(timeout=10)
    assert services_of(job_id), "the service outlives the killed platform"
    with (
        process_server(db, **SWARM_ENV) as (url, _),
        httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=30) as c,
    ):
        job = Ava(c).wait_for(job_id, 60, until=lambda j: j["status"] == "succeeded")
        assert job["result"] == {"attempt": 2}
        assert [a["outcome"] for a in job["attempts"]] == ["worker_lost", "succeeded"]
        gone(job_id)


def test_a_job_is_placed_on_the_second_node(swarm: Swarm, tmp_path: Path) -> None:
    if swarm.worker is None:
        pytest.skip(f"no second node: {swarm.no_worker_reason}")
    node = swarm.worker
    env = {**SWARM_ENV, "AVA_SWARM_CONSTRAINTS": f"node.id=={node.node_id}"}
    with thread_server(tmp_path / "ava.db", **env) as url, tenant_ava(url) as ava:
        source = "import time\ndef handler(input, env):\n    time.sleep(2)\n    return 'there'\n"
        worker = ava.worker("python", source)
        job_id = ava.trigger(worker["id"]).json()["id"]

        def on_worker_node() -> list[str]:
            out = subprocess.run(
                ["docker", "-H", node.host, "ps", "-q", "--filter", f"label=ava.job_id={job_id}"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            return out.stdout.split()

        wait_until(on_worker_node, 40, "the task's container is on the second node")
        local = cluster.sh("docker", "ps", "-aq", "--filter", f"label=ava.job_id={job_id}")
        assert local.split() == [], "nothing of the job runs on the manager's engine"
        job = ava.wait_for(job_id, 60)
        assert job["status"] == "succeeded", job
        assert job["result"] == "there"
        gone(job_id)
