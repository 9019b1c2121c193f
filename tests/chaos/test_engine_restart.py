"""The Docker engine restarted under running jobs: their attempts end `platform` and are
retried, and the platform recovers without a restart of its own. Run against a private
engine this test starts, stops and starts again (never the machine's own)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.support import START_S, make_worker, private_engine, wait_no_containers
from tests.support import headers, process_server

pytestmark = pytest.mark.docker

# the first attempt outlives the engine; the retry answers at once
SLOW_FIRST = (
    "#!/bin/bash\n"
    'if [ "$AVA_ATTEMPT" = 1 ]; then echo waiting; sleep 120; fi\n'
    'echo \'{"attempt":\'"$AVA_ATTEMPT"\'}\' > "$AVA_RESULT"\n'
)


def _wait(client: httpx.Client, job_id: str, statuses: set[str], timeout_s: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout_s
    job: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{job_id} not {statuses} after {timeout_s}s: {job}")


def test_engine_restart_mid_jobs_retries_them_and_the_platform_recovers(
    shell_image: str, tmp_path: Path
) -> None:
    db = tmp_path / "ava.db"
    with private_engine() as engine:
        engine.load_image(shell_image)
        env = {"AVA_DOCKER_HOST": engine.host, "AVA_RETRY_BASE_S": "1", "AVA_WARM_POOL": "0"}
        with (
            process_server(db, START_S, **env) as (url, proc),
            httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=30) as client,
        ):
            # retries 1 + 2 + 4 + 8 + 16 s apart: more than an engine restart takes
            worker = make_worker(client, SLOW_FIRST, max_retries=5)
            ids = [
                client.post(f"/workers/{worker}/jobs", json={"input": {}}).json()["id"]
                for _ in range(3)
            ]
            for job_id in ids:
                _wait(client, job_id, {"running"}, 60)
            deadline = time.monotonic() + 30
            while len(engine.docker("ps", "-q", text=True).stdout.split()) < 3:
                assert time.monotonic() < deadline, "the attempts' containers did not start"
                time.sleep(0.2)
            engine.stop()
            engine.start()
            jobs = [_wait(client, job_id, {"succeeded", "failed"}, 120) for job_id in ids]
            for job in jobs:
                outcomes = [a["outcome"] for a in job["attempts"]]
                assert job["status"] == "succeeded", job
                assert outcomes[0] == "platform" and outcomes[-1] == "succeeded", outcomes
            assert client.get(f"{url}/readyz").status_code == 200
            quick = make_worker(client)
            after = client.post(f"/workers/{quick}/jobs", json={"input": {}}, params={"wait": 25})
            assert after.status_code == 200, after.text
            assert after.json()["status"] == "succeeded"
            # the containers the engine stopped are removed once it answers again
            wait_no_containers(db, docker_host=engine.host)
            assert proc.poll() is None, "the platform itself was not restarted"
