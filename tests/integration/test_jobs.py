"""Jobs end to end: real HTTP, real SQLite, real containers from the real runtime images."""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration import sources
from tests.integration.conftest import Ava, ava_containers

pytestmark = pytest.mark.docker

ECHO = {
    "python": sources.PY_ECHO,
    "nodejs": sources.NODE_ECHO,
    "deno": sources.DENO_ECHO,
    "shell": sources.SHELL_ECHO,
}


@pytest.mark.parametrize("runtime", ["python", "nodejs", "deno", "shell"])
def test_job_runs_end_to_end_per_runtime(ava: Ava, runtime: str) -> None:
    worker = ava.worker(runtime, ECHO[runtime])
    job = ava.run(worker["id"], {"n": 7, "s": "héllo"})
    assert job["status"] == "succeeded", job
    assert job["result"] == {"echo": {"n": 7, "s": "héllo"}}
    assert job["worker_version"] == 1
    assert [a["outcome"] for a in job["attempts"]] == ["succeeded"]
    assert job["attempts"][0]["exit_code"] == 0


def test_wasm_job_end_to_end(ava: Ava) -> None:
    worker = ava.worker("wasm", sources.wasm_echo_b64())
    job = ava.run(worker["id"], {"x": 1})
    assert job["status"] == "succeeded", job
    assert job["result"] == {"echo": "wasm"}


def test_wait_returns_the_finished_job_with_200(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_ECHO)
    resp = ava.trigger(worker["id"], {"a": 1}, wait=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "succeeded"
    assert resp.json()["result"] == {"echo": {"a": 1}}


def test_wait_shorter_than_the_job_answers_202(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_SLEEP)
    resp = ava.trigger(worker["id"], {"s": 5}, wait=1)
    assert resp.status_code == 202
    assert resp.json()["status"] in ("queued", "running")
    ava.client.post(f"/jobs/{resp.json()['id']}/cancel")


def test_raise_fails_with_the_message_and_traceback_in_logs(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_RAISE)
    job = ava.run(worker["id"], {"why": "bad input"})
    assert job["status"] == "failed"
    assert job["error"]["type"] == "handler_error"
    assert "boom: bad input" in job["error"]["message"]
    assert "Traceback" in ava.logs(job["id"])


def test_flaky_handler_succeeds_on_attempt_three(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_FLAKY, max_retries=3)
    job = ava.run(worker["id"], wait=90)
    assert job["status"] == "succeeded", job
    assert job["result"] == {"attempt": 3}
    assert job["attempt"] == 3
    assert [a["outcome"] for a in job["attempts"]] == ["failed", "failed", "succeeded"]
    assert "flaky attempt 1" in job["attempts"][0]["error"]["message"]
    logs = ava.client.get(f"/jobs/{job['id']}/logs", headers={"accept": "application/x-ndjson"})
    attempts_logged = {json.loads(line)["attempt"] for line in logs.text.splitlines()}
    assert attempts_logged == {1, 2}  # the tracebacks of both failed attempts


def test_timeout_kills_the_container_near_the_limit(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_SLEEP, timeout_seconds=2)
    job = ava.run(worker["id"], {"s": 60})
    assert job["status"] == "timed_out", (job["error"], job["attempts"])
    assert job["error"]["type"] == "timeout"
    attempt = job["attempts"][0]
    took = _seconds(attempt["started_at"], attempt["finished_at"])
    assert 2.0 <= took <= 4.0, took  # the limit, plus container start and kill
    _assert_removed(job["id"])


def test_cancel_queued_then_running(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_SLEEP, max_concurrency=1)
    first = ava.trigger(worker["id"], {"s": 60}).json()
    ava.wait_for(first["id"], until=lambda j: j["status"] == "running")
    second = ava.trigger(worker["id"], {"s": 60}).json()
    time.sleep(0.5)
    assert ava.client.get(f"/jobs/{second['id']}").json()["status"] == "queued"
    cancelled = ava.client.post(f"/jobs/{second['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    started = time.monotonic()
    assert ava.client.post(f"/jobs/{first['id']}/cancel").status_code == 200
    job = ava.wait_for(first["id"], timeout_s=15)
    assert job["status"] == "cancelled"
    assert time.monotonic() - started < 5
    _assert_removed(first["id"])
    again = ava.client.post(f"/jobs/{first['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    assert ava.client.get(f"/jobs/{second['id']}").json()["attempts"] == []


def test_paused_and_deprecated_workers_refuse_jobs(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_ECHO)
    assert (
        ava.client.patch(f"/workers/{worker['id']}", json={"status": "paused"}).status_code == 200
    )
    resp = ava.trigger(worker["id"])
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "worker_paused"
    assert (
        ava.client.patch(f"/workers/{worker['id']}", json={"status": "active"}).status_code == 200
    )
    assert ava.trigger(worker["id"]).status_code == 202
    assert ava.client.delete(f"/workers/{worker['id']}").status_code == 200
    assert ava.trigger(worker["id"]).status_code == 409


def test_sse_delivers_a_line_while_the_job_runs(ava: Ava, jobs_server: str) -> None:
    worker = ava.worker("python", sources.PY_STREAM)
    job = ava.trigger(worker["id"]).json()
    seen: list[tuple[str, str]] = []
    with ava.client.stream("GET", f"/jobs/{job['id']}/logs", params={"follow": "true"}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = ""
        for raw in resp.iter_lines():
            if raw.startswith("event: "):
                event = raw[len("event: ") :]
            elif raw.startswith("data: "):
                data = json.loads(raw[len("data: ") :])
                if event == "log" and data["line"] == "first line":
                    status = ava.client.get(f"/jobs/{job['id']}").json()["status"]
                    seen.append(("first line", status))
                elif event == "end":
                    seen.append(("end", data["status"]))
    assert seen[0] == ("first line", "running")
    assert seen[-1] == ("end", "succeeded")


def test_every_sse_follower_gets_every_line(ava: Ava) -> None:
    worker = ava.worker(
        "python",
        "import time\ndef handler(input, env):\n"
        "    for i in range(5):\n        print('line', i, flush=True)\n        time.sleep(0.3)\n"
        "    return 'ok'\n",
    )
    job = ava.trigger(worker["id"]).json()
    url = f"/jobs/{job['id']}/logs"

    def follow(_: int) -> list[str]:
        got = []
        with (
            httpx.Client(
                base_url=str(ava.client.base_url), headers=ava.client.headers, timeout=60
            ) as c,
            c.stream("GET", url, headers={"accept": "text/event-stream"}) as resp,
        ):
            for raw in resp.iter_lines():
                if raw.startswith("data: "):
                    got.append(json.loads(raw[6:]).get("line", "<end>"))
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(follow, range(4)))
    expected = [f"line {i}" for i in range(5)] + ["<end>"]
    assert results == [expected] * 4


def test_logs_as_text_and_ndjson(ava: Ava) -> None:
    worker = ava.worker(
        "python",
        "import sys\ndef handler(input, env):\n    print('out 1')\n    print('err 1', file=sys.stderr)\n"
        '    print(\'AVA-RESULT-0000 {"ok": true, "result": "forged"}\')\n    return \'real\'\n',
    )
    job = ava.run(worker["id"])
    assert job["result"] == "real"
    text = ava.logs(job["id"])
    assert "out 1" in text and "err 1" in text and "forged" in text
    nd = ava.client.get(f"/jobs/{job['id']}/logs", headers={"accept": "application/x-ndjson"})
    rows = [json.loads(line) for line in nd.text.splitlines()]
    assert {r["stream"] for r in rows} == {"stdout", "stderr"}
    assert all(set(r) == {"ts", "stream", "attempt", "line"} for r in rows)


def test_container_is_hardened_and_carries_no_input_or_env(ava: Ava) -> None:
    worker = ava.worker(
        "python",
        sources.PY_SLEEP,
        config={"GREETING": "config-value-xyz"},
        memory_mb=128,
        cpus=0.5,
        network="none",
    )
    job = ava.trigger(worker["id"], {"s": 30, "marker": "input-value-abc"}).json()
    ava.wait_for(job["id"], until=lambda j: j["status"] == "running")
    info = _inspect_job_container(job["id"])
    ava.client.post(f"/jobs/{job['id']}/cancel")
    host, config = info["HostConfig"], info["Config"]
    assert config["User"] == "10001:10001"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == 128 * 1024 * 1024
    assert host["MemorySwap"] == 128 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] > 0
    assert config["NetworkDisabled"] is True  # network "none": no interface but loopback
    assert host["LogConfig"]["Type"] == "none"  # output comes over attach, stored by AVA only
    assert not any("docker.sock" in str(m) for m in info.get("Mounts", []))
    labels = config["Labels"]
    assert labels["ava.job_id"] == job["id"]
    assert labels["ava.tenant_id"] == ava.client.headers["x-tenant-id"]
    assert labels["ava.attempt"] == "1"
    dumped = json.dumps(info)
    assert "config-value-xyz" not in dumped and "input-value-abc" not in dumped


def test_env_reaches_the_handler_and_it_runs_as_non_root(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_ENV_PROBE, config={"GREETING": "hi"})
    job = ava.run(worker["id"])
    assert job["result"] == {"uid": 10001, "cfg": "hi", "os_cfg": "hi"}


def test_per_worker_max_concurrency_is_respected(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_SLEEP, max_concurrency=1)
    ids = [ava.trigger(worker["id"], {"s": 1}).json()["id"] for _ in range(3)]
    jobs = [ava.wait_for(i, timeout_s=60) for i in ids]
    assert all(j["status"] == "succeeded" for j in jobs)
    spans = sorted((j["attempts"][0]["started_at"], j["attempts"][0]["finished_at"]) for j in jobs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # never two at once


def test_result_over_one_mib_fails_clearly(ava: Ava) -> None:
    worker = ava.worker("python", "def handler(input, env):\n    return 'x' * (1024 * 1024 + 10)\n")
    job = ava.run(worker["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "result_too_large"


def test_one_mib_input_round_trips(ava: Ava) -> None:
    worker = ava.worker("python", "def handler(input, env):\n    return len(input['blob'])\n")
    job = ava.run(worker["id"], {"blob": "x" * (1024 * 1024 - 64)})
    assert job["result"] == 1024 * 1024 - 64


@pytest.mark.slow
def test_burst_of_100_jobs_at_concurrency_4_all_succeed(ava: Ava) -> None:
    worker = ava.worker("python", sources.PY_ECHO)
    ids = [ava.trigger(worker["id"], {"i": i}).json()["id"] for i in range(100)]
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        with httpx.Client(base_url=str(ava.client.base_url), headers=ava.client.headers) as c:
            while not stop.is_set():
                running = c.get("/jobs", params={"filter[status]": "running", "per_page": 100})
                peak = max(peak, running.json()["meta"]["total"])
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        jobs = [ava.wait_for(i, timeout_s=180) for i in ids]
    finally:
        stop.set()
        watcher.join()
    assert [j["status"] for j in jobs] == ["succeeded"] * 100
    assert sorted(j["result"]["echo"]["i"] for j in jobs) == list(range(100))
    assert 1 <= peak <= 4


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _label(container_id: str, name: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", f'{{{{index .Config.Labels "{name}"}}}}', container_id],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _container_jobs() -> set[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            "label=ava.managed=1",
            "--format",
            '{{.Label "ava.job_id"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def _inspect_job_container(job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=ava.job_id={job_id}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if out:
            raw = subprocess.run(
                ["docker", "inspect", out[0]], capture_output=True, text=True, check=True
            )
            return dict(json.loads(raw.stdout)[0])
        time.sleep(0.1)
    raise AssertionError(f"no container for {job_id}")


def _assert_removed(job_id: str, within_s: float = 10) -> None:
    """The job's container is removed: after its end, off the answer's path (README)."""
    deadline = time.monotonic() + within_s
    while job_id in _container_jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_id not in _container_jobs()


def _assert_engine_healthy_and_clean(job_id: str) -> None:
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    _assert_removed(job_id)
    # the engine still answers for the platform's containers, and none of this job's is left
    assert all(_label(c, "ava.job_id") != job_id for c in ava_containers())


NET_PROBE = """
import os, socket

def handler(input, env):
    # a UDP connect only looks the route up: no packet is sent, with or without a network
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))
        reached = True
    except OSError as exc:
        reached = exc.errno
    finally:
        probe.close()
    routes = open("/proc/net/route").read().splitlines()[1:]
    return {"interfaces": sorted(os.listdir("/sys/class/net")), "routes": routes, "out": reached}
"""


def test_network_none_has_only_loopback_and_no_route(ava: Ava) -> None:
    worker = ava.worker("python", NET_PROBE, network="none")
    job = ava.run(worker["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["interfaces"] == ["lo"]
    assert job["result"]["routes"] == []
    assert job["result"]["out"] == 101  # ENETUNREACH: no route out at all
