"""kill -9 of the server while a job runs, then a restart: no job is lost or left running."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import headers, process_server, thread_server

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# the first attempt hangs; a later one answers, so a recovered job can finish
HANG_ON_FIRST = (
    "import time\n"
    "def handler(input, env):\n"
    "    if env['AVA_ATTEMPT'] == '1':\n"
    "        print('hanging', flush=True)\n"
    "        time.sleep(300)\n"
    "    return {'attempt': int(env['AVA_ATTEMPT'])}\n"
)


def _containers_of(job_id: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=ava.job_id={job_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _wait(client: httpx.Client, job_id: str, pred: Any, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/v1/ava/jobs/{job_id}").json()
        if pred(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting on {job_id}: {job}")


def _start_hanging_job(url: str, hdrs: dict[str, str]) -> str:
    with httpx.Client(base_url=url, headers=hdrs, timeout=30) as c:
        worker = c.post(
            "/v1/ava/workers",
            json={"name": "hang", "runtime": "python", "source_code": HANG_ON_FIRST},
        ).json()
        job_id = str(
            c.post(f"/v1/ava/workers/{worker['id']}/jobs", json={"input": {}}).json()["id"]
        )
        _wait(c, job_id, lambda j: j["status"] == "running")
        deadline = time.monotonic() + 10
        while not _containers_of(job_id) and time.monotonic() < deadline:
            time.sleep(0.1)
    return job_id


def test_kill_9_then_restart_recovers_the_running_job(tmp_path: Path) -> None:
    db, hdrs = tmp_path / "ava.db", headers()
    with process_server(db) as (url, proc):
        job_id = _start_hanging_job(url, hdrs)
        proc.kill()  # SIGKILL: no shutdown code runs
        proc.wait(timeout=10)
    assert _containers_of(job_id), "the orphan container should outlive the killed server"
    with process_server(db) as (url, _), httpx.Client(base_url=url, headers=hdrs) as c:
        job = _wait(c, job_id, lambda j: j["status"] == "succeeded")
        assert job["result"] == {"attempt": 2}
        assert [a["outcome"] for a in job["attempts"]] == ["worker_lost", "succeeded"]
        assert job["attempts"][0]["error"]["type"] == "worker_lost"
        deadline = time.monotonic() + 10
        while _containers_of(job_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _containers_of(job_id) == []


def test_a_job_whose_attempts_keep_dying_ends_failed_worker_lost(tmp_path: Path) -> None:
    db, hdrs = tmp_path / "ava.db", headers()
    env = {"AVA_MAX_WORKER_LOST": "1"}
    with process_server(db, **env) as (url, proc):
        job_id = _start_hanging_job(url, hdrs)
        proc.kill()
        proc.wait(timeout=10)
    with process_server(db, **env) as (url, _), httpx.Client(base_url=url, headers=hdrs) as c:
        job = _wait(c, job_id, lambda j: j["status"] == "failed")
        assert job["error"]["type"] == "worker_lost"
        assert _containers_of(job_id) == []


def test_sigterm_requeues_running_jobs_and_a_restart_finishes_them(tmp_path: Path) -> None:
    db, hdrs = tmp_path / "ava.db", headers()
    with process_server(db) as (url, proc):
        job_id = _start_hanging_job(url, hdrs)
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert _containers_of(job_id) == []  # a clean stop removes its containers
    with process_server(db) as (url, _), httpx.Client(base_url=url, headers=hdrs) as c:
        job = _wait(c, job_id, lambda j: j["status"] == "succeeded")
        assert job["attempts"][0]["outcome"] == "worker_lost"


def test_engine_down_fails_attempts_as_platform_errors_and_server_stays_up(tmp_path: Path) -> None:
    env = {"AVA_DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "AVA_RETRY_BASE_S": "0.1"}
    hdrs = headers()
    with (
        thread_server(tmp_path / "ava.db", **env) as url,
        httpx.Client(base_url=url, headers=hdrs) as c,
    ):
        worker = c.post(
            "/v1/ava/workers",
            json={
                "name": "w",
                "runtime": "python",
                # with no engine there is no egress firewall either: an egress worker is refused
                "network": "none",
                "max_retries": 1,
                "source_code": "def handler(i, e):\n    return 1\n",
            },
        ).json()
        job_id = c.post(f"/v1/ava/workers/{worker['id']}/jobs", json={"input": {}}).json()["id"]
        job = _wait(c, job_id, lambda j: j["status"] == "failed", timeout_s=30)
        assert job["error"]["type"] == "platform"
        assert [a["outcome"] for a in job["attempts"]] == ["platform", "platform"]
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"store": True, "docker": False}
