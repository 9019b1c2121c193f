"""What the chaos tests share: bursts of no-op jobs triggered over HTTP (each under its own
Idempotency-Key, so a trigger retried across a crash can never queue a job twice), waits
bounded in time, the token check that proves no job ran twice, and a private Docker engine
a test may stop and start (the machine's own engine is never touched)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

FINISHED = {"succeeded", "failed", "timed_out", "cancelled"}
# a no-op job that prints one random token and returns; `network: none`, small limits
TOKEN_JOB = (
    "#!/bin/bash\n"
    "echo \"token $(od -An -N8 -tx1 /dev/urandom | tr -d ' \\n')\"\n"
    'echo \'{"ok":true}\' > "$AVA_RESULT"\n'
)
# a server process starts in a few seconds; on a machine loaded by other work, much later
START_S = 90.0
NOOP_WORKER = {"runtime": "shell", "network": "none", "memory_mb": 64, "cpus": 0.5}


def platform_containers(db: Path, docker_host: str | None = None) -> list[str]:
    """Containers of the platform serving `db` (its label is derived from the path)."""
    platform = hashlib.sha256(str(db.resolve()).encode()).hexdigest()[:16]
    host = ["-H", docker_host] if docker_host else []
    out = subprocess.run(
        ["docker", *host, "ps", "-aq", "--filter", f"label=ava.platform_id={platform}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.split()


def wait_no_containers(db: Path, timeout_s: float = 60, docker_host: str | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while platform_containers(db, docker_host) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert platform_containers(db, docker_host) == [], "containers were left behind"


def make_worker(client: httpx.Client, source: str = TOKEN_JOB, **fields: Any) -> str:
    body = {"name": "chaos", "source_code": source, **NOOP_WORKER, **fields}
    resp = client.post("/workers", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def trigger_once(client: httpx.Client, worker_id: str, key: str) -> str | None:
    """The job queued under `key`, or None when the platform did not answer (it may have
    been killed mid-request: the same key is tried again later)."""
    try:
        resp = client.post(
            f"/workers/{worker_id}/jobs", json={"input": {}}, headers={"Idempotency-Key": key}
        )
    except httpx.HTTPError:
        return None
    if resp.status_code not in (200, 202):
        return None
    return str(resp.json()["id"])


def burst(client: httpx.Client, worker_id: str, keys: list[str]) -> dict[str, str]:
    """Triggers one job per key, 8 at a time; returns the keys the platform accepted."""
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda k: trigger_once(client, worker_id, k), keys))
    return {k: i for k, i in zip(keys, ids, strict=True) if i is not None}


def count(client: httpx.Client, status: str) -> int:
    resp = client.get("/jobs", params={"filter[status]": status, "per_page": 1})
    resp.raise_for_status()
    return int(resp.json()["meta"]["total"])


def wait_drained(client: httpx.Client, timeout_s: float) -> None:
    """Until the tenant has no queued or running job (bounded)."""
    deadline = time.monotonic() + timeout_s
    left = -1
    while time.monotonic() < deadline:
        left = count(client, "queued") + count(client, "running")
        if left == 0:
            return
        time.sleep(1.0)
    raise AssertionError(f"{left} jobs still queued or running after {timeout_s}s")


def all_jobs(client: httpx.Client) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    for page in range(1, 1000):
        data = client.get("/jobs", params={"per_page": 100, "page": page}).json()["data"]
        jobs += data
        if len(data) < 100:
            return jobs
    raise AssertionError("too many pages")


def successful_tokens(client: httpx.Client, job: dict[str, Any]) -> list[str]:
    """The tokens printed by the job's succeeded attempts (a lost attempt may print its own:
    it never returned, so it does not count as a run)."""
    won = {a["number"] for a in job["attempts"] if a["outcome"] == "succeeded"}
    text = client.get(f"/jobs/{job['id']}/logs", headers={"accept": "application/x-ndjson"}).text
    lines = [json.loads(line) for line in text.splitlines() if line]
    return [ln["line"] for ln in lines if ln["attempt"] in won and ln["line"].startswith("token ")]


# -- a private Docker engine: its own data, exec root, pid file and socket; no bridge, no
# iptables, so it touches nothing of the machine's engine or network ----------------------


class PrivateEngine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "d.sock"
        self.host = f"unix://{self.sock}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        (self.root / "daemon.json").write_text("{}")
        log = (self.root / "dockerd.log").open("ab")
        # in a network namespace of its own (`unshare --net` execs dockerd, so the pid is
        # dockerd's): a dockerd started with `--bridge none` deletes the host's docker0 bridge
        # at start-up, which would break every bridge container of the machine's engine
        self.proc = subprocess.Popen(
            [
                "unshare", "--net",
                "dockerd",
                "--config-file", str(self.root / "daemon.json"),
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "d.pid"),
                "-H", self.host,
                "--bridge", "none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.docker("info", check=False).returncode == 0:
                return
            assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            time.sleep(0.3)
        raise TimeoutError("the private engine did not start")

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM to the private dockerd this test started (never the machine's)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def docker(self, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(
            ["docker", "-H", self.host, *args], capture_output=True, timeout=300, check=check, **kw
        )

    def load_image(self, ref: str) -> None:
        """Copies an image of the machine's engine into this one (save | load)."""
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
        assert save.stdout is not None
        self.docker("load", "-q", stdin=save.stdout)
        assert save.wait(timeout=300) == 0


@contextmanager
def private_engine() -> Iterator[PrivateEngine]:
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        raise RuntimeError("the engine-restart test needs root and dockerd (make test-engine)")
    # a short path: a unix socket's path is limited to 108 bytes
    root = Path(tempfile.mkdtemp(prefix="ava-chaos-", dir="/tmp"))
    engine = PrivateEngine(root)
    try:
        engine.start()
        yield engine
    finally:
        if engine.proc is not None and engine.proc.poll() is None:
            engine.docker(
                "rm", "-f", *engine.docker("ps", "-aq", text=True).stdout.split(), check=False
            )
        engine.stop()
        subprocess.run(["umount", "-R", str(root / "exec")], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
