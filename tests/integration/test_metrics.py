"""GET /metrics on a real server running real containers: the counters, histograms and
gauges move as jobs are queued, run, succeed and fail."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import Ava

pytestmark = pytest.mark.docker

SLEEPER = """
import time

def handler(input, env):
    print("working", flush=True)
    time.sleep(input.get("sleep", 0))
    if input.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(jobs_server: str) -> Samples:
    resp = httpx.get(f"{jobs_server}/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= lbl)


def eventually(check: Callable[[], bool], timeout_s: float = 30) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s * 10)):
        if check():
            return
        event.wait(0.1)
    raise AssertionError("condition not met in time")


def test_metrics_need_no_auth_and_describe_everything(jobs_server: str) -> None:
    text = httpx.get(f"{jobs_server}/metrics", timeout=10).text
    for name in (
        "ava_jobs",
        "ava_job_attempts_total",
        "ava_jobs_finished_total",
        "ava_job_attempt_duration_seconds",
        "ava_container_start_latency_seconds",
        "ava_queue_depth",
        "ava_queue_oldest_age_seconds",
        "ava_running_containers",
        "ava_http_request_duration_seconds",
    ):
        assert f"# TYPE {name}" in text or f"# TYPE {name.removesuffix('_total')}" in text, name


def test_counters_and_histograms_move_as_jobs_run(jobs_server: str, ava: Ava) -> None:
    before = scrape(jobs_server)
    worker = ava.worker("python", SLEEPER)
    assert ava.run(worker["id"], {})["status"] == "succeeded"
    assert ava.run(worker["id"], {})["status"] == "succeeded"
    assert ava.run(worker["id"], {"fail": True})["status"] == "failed"
    after = scrape(jobs_server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ava_jobs", status="succeeded", runtime="python") >= 2
    assert delta("ava_jobs", status="failed", runtime="python") >= 1
    assert delta("ava_job_attempts_total", outcome="succeeded") >= 2
    assert delta("ava_job_attempts_total", outcome="failed") >= 1
    assert delta("ava_jobs_finished_total", status="succeeded") >= 2
    assert delta("ava_jobs_finished_total", status="failed") >= 1
    assert delta("ava_job_attempt_duration_seconds_count", outcome="succeeded") >= 2
    assert delta("ava_job_attempt_duration_seconds_sum", outcome="succeeded") > 0
    assert delta("ava_container_start_latency_seconds_count") >= 3
    assert delta("ava_container_start_latency_seconds_sum") > 0
    route = "/v1/ava/workers/{worker_id}/jobs"
    assert (
        delta("ava_http_request_duration_seconds_count", method="POST", route=route, status="202")
        >= 3
    )
    assert delta("ava_http_request_duration_seconds_count", route="/v1/ava/jobs/{job_id}") >= 3


def test_queue_gauges_follow_a_backlog(jobs_server: str, ava: Ava) -> None:
    worker = ava.worker("python", SLEEPER, max_concurrency=1)
    ids = [ava.trigger(worker["id"], {"sleep": 2}).json()["id"] for _ in range(3)]

    def backlog_visible() -> bool:
        now = scrape(jobs_server)
        return (
            value(now, "ava_running_containers") >= 1
            and value(now, "ava_queue_depth") >= 2
            and value(now, "ava_jobs", status="queued", runtime="python") >= 2
            and value(now, "ava_queue_oldest_age_seconds") > 0
        )

    eventually(backlog_visible)
    for job_id in ids:
        assert ava.wait_for(job_id, timeout_s=60)["status"] == "succeeded"
    # jobs of other tests may still be around, but this worker's backlog is gone
    assert value(scrape(jobs_server), "ava_jobs", status="succeeded", runtime="python") >= 3
