"""GET /metrics on a real server running real containers: the counters, histograms and
gauges move as jobs are queued, run, succeed and fail."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import FAST_RETRY_ENV, Ava, tenant_ava
from tests.support import thread_server

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


@pytest.fixture(scope="module")
def metrics_server(
    runtime_images: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A server of this module's own, so every delta below is exactly what these tests did."""
    with thread_server(tmp_path_factory.mktemp("metrics") / "ava.db", **FAST_RETRY_ENV) as url:
        yield url


@pytest.fixture
def own(metrics_server: str) -> Iterator[Ava]:
    with tenant_ava(metrics_server) as ava:
        yield ava


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


def test_counters_and_histograms_move_as_jobs_run(metrics_server: str, own: Ava) -> None:
    before = scrape(metrics_server)
    worker = own.worker("python", SLEEPER, max_retries=0)
    for input, status in (({}, "succeeded"), ({}, "succeeded"), ({"fail": True}, "failed")):
        resp = own.trigger(worker["id"], input, wait=60)
        assert resp.status_code == 200, resp.text  # ended within the wait
        assert own.client.get(f"/jobs/{resp.json()['id']}").json()["status"] == status
    after = scrape(metrics_server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("ava_jobs", status="succeeded", runtime="python") == 2
    assert delta("ava_jobs", status="failed", runtime="python") == 1
    assert delta("ava_job_attempts_total", outcome="succeeded") == 2
    assert delta("ava_job_attempts_total", outcome="failed") == 1
    assert delta("ava_jobs_finished_total", status="succeeded") == 2
    assert delta("ava_jobs_finished_total", status="failed") == 1
    assert delta("ava_job_attempt_duration_seconds_count", outcome="succeeded") == 2
    assert delta("ava_job_attempt_duration_seconds_sum", outcome="succeeded") > 0
    assert delta("ava_container_start_latency_seconds_count") == 3
    assert delta("ava_container_start_latency_seconds_sum") > 0
    route = "/v1/ava/workers/{worker_id}/jobs"
    assert (
        delta("ava_http_request_duration_seconds_count", method="POST", route=route, status="200")
        == 3
    )
    assert delta("ava_http_request_duration_seconds_count", route="/v1/ava/jobs/{job_id}") == 3


def test_queue_gauges_follow_a_backlog(metrics_server: str, own: Ava) -> None:
    before = value(scrape(metrics_server), "ava_jobs", status="succeeded", runtime="python")
    worker = own.worker("python", SLEEPER, max_concurrency=1)
    ids = [own.trigger(worker["id"], {"sleep": 2}).json()["id"] for _ in range(3)]

    def backlog_visible() -> bool:
        now = scrape(metrics_server)
        return (
            value(now, "ava_running_containers") == 1
            and value(now, "ava_queue_depth") == 2
            and value(now, "ava_jobs", status="queued", runtime="python") == 2
            and value(now, "ava_queue_oldest_age_seconds") > 0
        )

    eventually(backlog_visible)
    for job_id in ids:
        assert own.wait_for(job_id, timeout_s=60)["status"] == "succeeded"
    after = scrape(metrics_server)
    assert value(after, "ava_jobs", status="succeeded", runtime="python") - before == 3
    assert value(after, "ava_queue_depth") == 0
    assert value(after, "ava_jobs", status="queued", runtime="python") == 0
