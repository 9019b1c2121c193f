"""A job runs the worker as it stood when the job was queued: a PATCH between trigger and start
changes only the jobs queued after it (real engine)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Ava

pytestmark = pytest.mark.docker

GATE = """
import time

def handler(input, env):
    time.sleep(input.get("sleep", 0))
    return {"K": env.get("K"), "code": "v1"}
"""
GATE_V2 = GATE.replace('"v1"', '"v2"')


def _queued_behind_a_sleeper(ava: Ava, **fields: Any) -> tuple[str, str, str]:
    """(worker id, the sleeper's job id, the id of the job queued behind it)."""
    worker = ava.worker("python", GATE, max_concurrency=1, **fields)
    first = ava.trigger(worker["id"], {"sleep": 3}).json()["id"]
    ava.wait_for(first, until=lambda j: j["status"] == "running", timeout_s=60)
    second = ava.trigger(worker["id"], {}).json()["id"]
    assert ava.client.get(f"/jobs/{second}").json()["status"] == "queued"
    return worker["id"], first, second


def test_config_patched_while_a_job_waits_applies_to_later_jobs_only(ava: Ava) -> None:
    worker_id, first, waiting = _queued_behind_a_sleeper(ava, config={"K": "a"})
    patched = ava.client.patch(f"/workers/{worker_id}", json={"config": {"K": "b"}})
    assert patched.status_code == 200, patched.text
    later = ava.trigger(worker_id, {}).json()["id"]
    assert ava.wait_for(waiting)["result"] == {"K": "a", "code": "v1"}
    assert ava.wait_for(later)["result"] == {"K": "b", "code": "v1"}
    shown = ava.client.get(f"/jobs/{waiting}").json()["run"]
    assert shown["config"] == {"K": "a"} and shown["timeout_seconds"] == 300
    assert ava.client.get(f"/jobs/{later}").json()["run"]["config"] == {"K": "b"}
    assert ava.wait_for(first)["status"] == "succeeded"


def test_timeout_patched_while_a_job_waits_applies_to_later_jobs_only(ava: Ava) -> None:
    worker_id, first, waiting = _queued_behind_a_sleeper(ava, timeout_seconds=30)
    assert ava.client.patch(f"/workers/{worker_id}", json={"timeout_seconds": 1}).status_code == 200
    slow_after = ava.trigger(worker_id, {"sleep": 2.5}).json()["id"]
    assert ava.wait_for(first)["status"] == "succeeded"  # started before: its 30 s hold
    assert ava.wait_for(waiting)["status"] == "succeeded"
    assert ava.client.get(f"/jobs/{waiting}").json()["run"]["timeout_seconds"] == 30
    ended = ava.wait_for(slow_after)
    assert ended["status"] == "timed_out", ended
    assert ended["run"]["timeout_seconds"] == 1


def test_source_patched_while_a_job_waits_applies_to_later_jobs_only(ava: Ava) -> None:
    worker_id, first, waiting = _queued_behind_a_sleeper(ava)
    patched = ava.client.patch(f"/workers/{worker_id}", json={"source_code": GATE_V2})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    later = ava.trigger(worker_id, {}).json()["id"]
    old, new = ava.wait_for(waiting), ava.wait_for(later)
    assert (old["worker_version"], old["result"]["code"]) == (1, "v1")
    assert (new["worker_version"], new["result"]["code"]) == (2, "v2")
    assert ava.wait_for(first)["status"] == "succeeded"


def test_retries_of_a_job_keep_its_snapshot(ava: Ava) -> None:
    flaky = """
import time

def handler(input, env):
    if env["AVA_ATTEMPT"] == "1":
        time.sleep(2)
        raise ValueError("first attempt fails")
    return {"K": env["K"], "attempt": env["AVA_ATTEMPT"]}
"""
    worker = ava.worker("python", flaky, config={"K": "a"}, max_retries=1)
    job = ava.trigger(worker["id"], {}).json()["id"]
    ava.wait_for(job, until=lambda j: j["status"] == "running")
    # while attempt 1 runs: a new config, and no retries at all
    patch = {"config": {"K": "b"}, "max_retries": 0}
    assert ava.client.patch(f"/workers/{worker['id']}", json=patch).status_code == 200
    ended = ava.wait_for(job)
    assert ended["status"] == "succeeded", ended
    assert ended["result"] == {"K": "a", "attempt": "2"}
