"""docker-compose.cluster.yml end to end: PostgreSQL, one API process and three scheduler
processes (`up --scale scheduler=3`), under the tests' own image tags; jobs queued through the
API are run by the schedulers, and the stack is torn down with its volumes."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_compose import HOST_CA, SECRET, Stack
from tests.support import ROOT, build_test_images, headers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    build_test_images(["python"])
    if HOST_CA.is_file():
        shutil.copyfile(HOST_CA, ROOT / "images" / "platform" / "extra-ca" / "host-ca.crt")
    s = Stack(tmp_path_factory.mktemp("cluster"))
    s.base[s.base.index(str(ROOT / "docker-compose.yml"))] = str(
        ROOT / "docker-compose.cluster.yml"
    )
    try:
        up = s.compose("up", "-d", "--build", "--scale", "scheduler=3", timeout_s=900)
        assert up.returncode == 0, up.stdout + up.stderr
        s.wait_ready()
        yield s
    except BaseException:
        print(s.compose("ps").stdout, s.compose("logs", "--tail", "60").stdout[-20000:])
        raise
    finally:
        down = s.compose("down", "-v", "--remove-orphans", timeout_s=120)
        assert down.returncode == 0, down.stderr


def test_three_schedulers_run_the_jobs_the_api_queues(cluster_stack: Stack) -> None:
    try:
        _run_jobs(cluster_stack)
    except BaseException:
        print(cluster_stack.compose("ps").stdout)
        print(cluster_stack.compose("logs", "--tail", "60").stdout[-20000:])
        raise


def _run_jobs(cluster_stack: Stack) -> None:
    schedulers = cluster_stack.compose("ps", "-q", "scheduler").stdout.split()
    assert len(schedulers) == 3
    hdrs = {**headers(), "x-internal-secret": SECRET}  # the stack's own secret
    with httpx.Client(base_url=f"{cluster_stack.url}/v1/ava", headers=hdrs, timeout=60) as c:
        made = c.post(
            "/workers",
            json={
                "name": "sq",
                "runtime": "python",
                "network": "none",
                "source_code": "def handler(input, env):\n    return input['n'] * input['n']\n",
            },
        )
        assert made.status_code == 201, made.text
        wid = made.json()["id"]
        ids = [
            c.post(f"/workers/{wid}/jobs", json={"input": {"n": n}}).json()["id"] for n in range(6)
        ]
        deadline = time.monotonic() + 180
        jobs = []
        while time.monotonic() < deadline:
            jobs = [c.get(f"/jobs/{j}").json() for j in ids]
            if all(j["status"] in ("succeeded", "failed") for j in jobs):
                break
            time.sleep(0.5)
    assert [j.get("result") for j in jobs] == [n * n for n in range(6)], jobs
    # the API process runs no job: it has no scheduler (its role is api)
    api = cluster_stack.compose("ps", "-q", "api").stdout.split()[0]
    env = subprocess.run(
        ["docker", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", api],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "AVA_ROLE=api" in env.splitlines()
