"""Prewarmed containers on a real engine: every attempt still gets a container of its own,
nothing passes from one job to the next, the pool refills and shrinks, and timeout, cancel,
OOM and output caps behave exactly as cold."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Ava, tenant_ava
from tests.support import headers, process_server, server_env, thread_server

pytestmark = pytest.mark.docker

TTL_S = 12
POOL_ENV = {
    "AVA_RETRY_BASE_S": "0.2",
    "AVA_MAX_CONCURRENT_JOBS": "4",
    "AVA_WARM_POOL": "1",
    "AVA_WARM_MAX": "2",
    "AVA_WARM_IDLE_TTL_S": str(TTL_S),
    "AVA_LOG_CAP_BYTES": "65536",
}
PROBE = """
import os, socket

def handler(input, env):
    seen = os.path.exists("/tmp/mark")
    with open("/tmp/mark", "w") as f:
        f.write("x")
    return {"host": socket.gethostname(), "seen_mark": seen, "token": env.get("TOKEN"),
            "env_keys": sorted(k for k in os.environ if k.startswith(("TOKEN", "K")))}
"""


@pytest.fixture(scope="module")
def pool_server(
    runtime_images: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with thread_server(tmp_path_factory.mktemp("pool") / "ava.db", **POOL_ENV) as url:
        yield url


@pytest.fixture
def warm(pool_server: str) -> Iterator[Ava]:
    with tenant_ava(pool_server) as ava:
        yield ava


def pool(url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{url}/readyz", timeout=10).json()["pool"])


def run_waited(ava: Ava, worker_id: str, input: Any = None) -> dict[str, Any]:
    resp = ava.trigger(worker_id, input if input is not None else {}, wait=60)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def pool_containers() -> list[dict[str, Any]]:
    ids = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=ava.pool=1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not ids:
        return []
    out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
    return list(json.loads(out.stdout)) if out.returncode == 0 else []


def eventually(check: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_each_job_gets_a_fresh_container_and_sees_nothing_of_the_last(
    pool_server: str, warm: Ava
) -> None:
    worker = warm.worker("python", PROBE, network="none")
    before = pool(pool_server)
    results = []
    for _ in range(20):
        job = run_waited(warm, worker["id"])
        assert job["status"] == "succeeded", job
        results.append(job["result"])
        time.sleep(0.3)  # an agent's think time: the pool refills meanwhile
    assert len({r["host"] for r in results}) == 20
    assert not any(r["seen_mark"] for r in results)
    after = pool(pool_server)
    assert after["hits"] - before["hits"] >= 10, after  # most of them were warm


def test_a_secret_of_one_tenant_never_reaches_a_later_job(pool_server: str, warm: Ava) -> None:
    token = "tenant-a-secret-" + str(time.monotonic_ns())
    assert warm.client.put("/secrets/TOKEN", json={"value": token}).status_code == 201
    a = warm.worker("python", PROBE, secrets=["TOKEN"], network="none")
    assert run_waited(warm, a["id"])["result"]["token"] == "***"  # the handler had it
    with tenant_ava(pool_server) as b:
        other = b.worker("python", PROBE, network="none")
        for _ in range(4):
            result = run_waited(b, other["id"])["result"]
            assert result["token"] is None and result["env_keys"] == []


def test_idle_containers_hold_nothing_and_are_hardened(pool_server: str, warm: Ava) -> None:
    worker = warm.worker("python", PROBE, network="none", config={"K": "config-value-q"})
    run_waited(warm, worker["id"])
    eventually(lambda: len(pool_containers()) >= 1)
    for info in pool_containers():
        host, config = info["HostConfig"], info["Config"]
        assert config["User"] == "10001:10001" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
        assert host["AutoRemove"] is True
        assert [e.split("=")[0] for e in config["Env"] if e.startswith("AVA_")] == [
            "AVA_WARM_TTL_S"
        ]
        assert "config-value-q" not in json.dumps(info)
        assert "ava.job_id" not in config["Labels"]


def test_the_pool_refills_after_use_and_empties_after_its_ttl(pool_server: str, warm: Ava) -> None:
    worker = warm.worker("python", PROBE, network="none", memory_mb=96)
    shape = lambda: [s for s in pool(pool_server)["shapes"] if "|96m|" in s["shape"]]  # noqa: E731
    run_waited(warm, worker["id"])  # cold: the shape's first demand
    eventually(lambda: bool(shape()) and shape()[0]["idle"] >= 1)
    hits = pool(pool_server)["hits"]
    run_waited(warm, worker["id"])
    assert pool(pool_server)["hits"] == hits + 1
    eventually(lambda: shape()[0]["idle"] >= 1)  # refilled after use
    eventually(lambda: shape()[0]["idle"] == 0, timeout_s=TTL_S + 20)  # idle: it shrinks
    eventually(lambda: all("|96m|" not in c["Config"]["Image"] for c in pool_containers()), 20)


def test_timeout_cancel_oom_and_output_cap_behave_as_cold(pool_server: str, warm: Ava) -> None:
    src = """
import time

def handler(input, env):
    if input.get("sleep"):
        time.sleep(input["sleep"])
    if input.get("hog"):
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    if input.get("spam"):
        for _ in range(input["spam"]):
            print("x" * 1000)
    return "done"
"""
    worker = warm.worker("python", src, network="none", memory_mb=64, timeout_seconds=2)
    for _ in range(2):
        run_waited(warm, worker["id"])  # the pool for this shape is warm now
        time.sleep(0.5)
    timed = run_waited(warm, worker["id"], {"sleep": 10})
    assert timed["status"] == "timed_out", timed
    oom = run_waited(warm, worker["id"], {"hog": True})
    assert oom["status"] == "failed" and oom["error"]["type"] == "out_of_memory", oom
    job = warm.trigger(worker["id"], {"sleep": 1.5}).json()
    warm.wait_for(job["id"], until=lambda j: j["status"] == "running")
    assert warm.client.post(f"/jobs/{job['id']}/cancel").status_code == 200
    assert warm.wait_for(job["id"])["status"] == "cancelled"
    spammer = warm.worker("python", src, network="none", memory_mb=64)
    spam = run_waited(warm, spammer["id"], {"spam": 200})
    assert spam["status"] == "succeeded", spam
    logs = warm.logs(spam["id"])
    assert "log truncated" in logs.splitlines()[-1]
    assert len(logs.encode()) < 65536 + 1000


def platform_containers(db: Path, *, running: bool = False) -> set[str]:
    from ava_platform.config import load_settings
    from ava_platform.wiring import platform_id

    pid = platform_id(load_settings(server_env(db)))
    only = ["--filter", "status=running"] if running else []
    out = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=ava.platform_id={pid}", *only],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


HANG = "import time\n\ndef handler(input, env):\n    time.sleep(input.get('s', 0))\n    return 1\n"


PROCESS_ENV = {k: v for k, v in POOL_ENV.items() if k != "AVA_LOG_CAP_BYTES"}


def warm_worker(c: httpx.Client, url: str) -> str:
    """A worker whose shape has a warm pool: three jobs asked for it."""
    body = {"name": "w", "runtime": "python", "source_code": HANG, "network": "none"}
    worker_id = str(c.post("/v1/ava/workers", json=body).json()["id"])
    for _ in range(3):
        resp = c.post(f"/v1/ava/workers/{worker_id}/jobs?wait=30", json={"input": {}})
        assert resp.status_code == 200, resp.text
        time.sleep(0.5)
    eventually(lambda: pool(url)["idle"] >= 1)
    return worker_id


def test_kill_9_with_idle_and_busy_pool_containers_then_restart(tmp_path: Path) -> None:
    db, hdrs, env = tmp_path / "ava.db", headers(), PROCESS_ENV
    with process_server(db, **env) as (url, proc), httpx.Client(base_url=url, headers=hdrs) as c:
        worker_id = warm_worker(c, url)
        busy = c.post(f"/v1/ava/workers/{worker_id}/jobs", json={"input": {"s": 60}}).json()
        eventually(lambda: c.get(f"/v1/ava/jobs/{busy['id']}").json()["status"] == "running")
        eventually(lambda: pool(url)["idle"] >= 1)
        before = platform_containers(db)
        assert len(before) >= 2  # the busy one and at least one idle
        proc.kill()
        proc.wait(timeout=10)
    # an idle container's stdin closes with the process that held it: its shim ends and the
    # engine removes it; the busy one runs on until a restart kills it (and ended containers
    # whose removal waited for a quiet engine are swept up by the restart too)
    eventually(lambda: len(platform_containers(db, running=True)) == 1, timeout_s=20)
    left = platform_containers(db)
    with process_server(db, **env) as (url, _), httpx.Client(base_url=url, headers=hdrs) as c:
        eventually(lambda: not (left & platform_containers(db)), timeout_s=30)

        def job() -> dict[str, Any]:
            return dict(c.get(f"/v1/ava/jobs/{busy['id']}").json())

        eventually(lambda: bool(job()["attempts"]) and job()["attempts"][0]["outcome"] is not None)
        assert job()["attempts"][0]["outcome"] == "worker_lost"
        c.post(f"/v1/ava/jobs/{busy['id']}/cancel")  # its retry would sleep 60 s
        eventually(lambda: job()["status"] in ("succeeded", "failed", "cancelled", "timed_out"))


def test_sigterm_leaves_no_container_behind(tmp_path: Path) -> None:
    db, hdrs = tmp_path / "ava.db", headers()
    with (
        process_server(db, **PROCESS_ENV) as (url, proc),
        httpx.Client(base_url=url, headers=hdrs) as c,
    ):
        worker_id = warm_worker(c, url)
        c.post(f"/v1/ava/workers/{worker_id}/jobs", json={"input": {"s": 60}})
        eventually(lambda: len(platform_containers(db)) >= 2)
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    assert platform_containers(db) == set()


class EngineProxy:
    """A socket in front of the real engine that a test can take away and bring back: every
    connection through it (the platform's attach streams too) closes when it goes."""

    def __init__(self, path: Path, engine: str = "/var/run/docker.sock") -> None:
        self.path, self.engine = path, engine
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []

    def up(self) -> None:
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self._conns.clear()
        self.path.unlink(missing_ok=True)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.engine)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def test_the_engine_going_away_empties_the_pool_and_it_refills_when_back(
    runtime_images: list[str], tmp_path: Path
) -> None:
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.up()
    env = {**POOL_ENV, "AVA_DOCKER_HOST": f"unix://{proxy.path}", "AVA_RETRY_BASE_S": "0.5"}
    try:
        with (
            thread_server(tmp_path / "ava.db", **env) as url,
            httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=120) as c,
        ):
            ava = Ava(c)
            wid = ava.worker("python", PROBE, network="none", max_retries=5)["id"]
            for _ in range(3):
                run_waited(ava, wid)
                time.sleep(0.5)
            eventually(lambda: pool(url)["idle"] >= 1)
            idle_before = platform_containers(tmp_path / "ava.db")
            proxy.down()
            eventually(lambda: pool(url)["idle"] == 0, timeout_s=15)
            # their streams closed with the engine's socket: the shims ended, the engine
            # removed them
            eventually(lambda: not (idle_before & platform_containers(tmp_path / "ava.db")), 20)
            job = ava.trigger(wid, {}).json()  # queued while the engine is away
            time.sleep(1.5)
            proxy.up()
            assert ava.wait_for(job["id"], timeout_s=60)["status"] == "succeeded"
            eventually(lambda: pool(url)["idle"] >= 1, timeout_s=30)  # refilled
            hits = pool(url)["hits"]
            run_waited(ava, wid)
            assert pool(url)["hits"] == hits + 1
    finally:
        proxy.down()


def test_a_deploy_switches_new_jobs_to_the_new_image(pool_server: str, warm: Ava) -> None:
    from tests.integration.test_deploy import deploy, tgz

    tagged = "def handler(input, env):\n    return {'code': '%s'}\n"
    worker = warm.worker("python", tagged % "inline", network="none")
    for _ in range(3):
        assert run_waited(warm, worker["id"])["result"] == {"code": "inline"}
        time.sleep(0.4)
    old = [s for s in pool(pool_server)["shapes"] if "runtime-python" in s["shape"]]
    assert old and sum(s["idle"] for s in old) >= 1  # the runtime image's pool is warm
    version = deploy(warm, worker["id"], tgz({"main.py": tagged % "bundle"}))
    assert version["status"] == "ready", version
    for _ in range(3):  # first cold (a new shape: the version's image), then warm
        job = run_waited(warm, worker["id"])
        assert job["result"] == {"code": "bundle"} and job["worker_version"] == 2
        assert job["run"]["image"] == version["image"]
        time.sleep(0.4)
    shapes = {s["shape"].split("|")[0]: s for s in pool(pool_server)["shapes"]}
    assert version["image"] in shapes
    subprocess.run(["docker", "rmi", "-f", version["image"]], capture_output=True, check=False)


@pytest.mark.parametrize("runtime", ["python", "nodejs", "deno", "shell", "wasm"])
def test_a_shim_no_job_reaches_ends_itself_at_its_ttl(
    runtime_images: list[str], runtime: str
) -> None:
    from ava_platform.executor.runtime_images import runtime_image_tag

    argv = ["docker", "run", "--rm", "-i", "--network", "none", "-e", "AVA_WARM_TTL_S=2"]
    started = time.monotonic()
    # stdin stays open and empty, as a prewarmed container's does while it waits
    proc = subprocess.Popen(
        [*argv, runtime_image_tag(runtime)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    assert code == 0, (out, err)
    assert 1.5 < took < 20, took
    assert b"AVA-RESULT" not in out
