"""Many tenants on one platform, on the real engine over real HTTP: fair share measured by
`started_at`, the queued and running quotas, re-runs, and signed completion webhooks."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.integration import sources
from tests.integration.conftest import Ava
from tests.support import WebhookReceiver, headers, thread_server, webhook_receiver

pytestmark = pytest.mark.docker

ENV = {
    "AVA_MAX_CONCURRENT_JOBS": "2",
    "AVA_RETRY_BASE_S": "0.2",
    "AVA_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver below listens on loopback
    "AVA_WEBHOOK_RETRY_BASE_S": "0.3",
}
PY_SHORT = (
    "import time\n"
    "def handler(input, env):\n"
    "    time.sleep(float(input.get('s', 0.2)))\n"
    "    return {'i': input.get('i')}\n"
)


@pytest.fixture(scope="module")
def server(runtime_images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with thread_server(tmp_path_factory.mktemp("tenants") / "ava.db", **ENV) as url:
        yield url


def _ava(server: str, tenant: str | None = None, role: str = "tenant-admin") -> Ava:
    client = httpx.Client(
        base_url=f"{server}/v1/ava", headers=headers(tenant, role=role), timeout=60
    )
    return Ava(client)


def _operator(server: str) -> Ava:
    return _ava(server, "ten_operator", role="tenant-system-admin")


def test_a_deep_queue_does_not_hold_back_another_tenant(server: str) -> None:
    a, b = _ava(server), _ava(server)
    worker_a = a.worker("python", PY_SHORT, network="none")["id"]
    worker_b = b.worker("python", PY_SHORT, network="none")["id"]
    with ThreadPoolExecutor(8) as pool:
        a_ids = list(
            pool.map(lambda i: a.trigger(worker_a, {"i": i, "s": 0.3}).json()["id"], range(200))
        )
    b_job = b.trigger(worker_b, {"i": "b", "s": 0})
    assert b_job.status_code == 202, b_job.text
    done = b.wait_for(b_job.json()["id"], timeout_s=60)
    assert done["status"] == "succeeded", done
    listed = a.client.get("/jobs", params={"per_page": 100, "filter[status]": "queued"}).json()
    try:
        started_a = [
            j["started_at"]
            for p in (1, 2)
            for j in a.client.get("/jobs", params={"per_page": 100, "page": p}).json()["data"]
            if j["started_at"] is not None
        ]
        # every slot that freed after B queued went to B first: no job of A started between
        # B's trigger and B's start, while A still had a backlog of queued jobs
        overtaking = [t for t in started_a if done["created_at"] < t < done["started_at"]]
        assert overtaking == []
        assert listed["meta"]["total"] > 150, "A's backlog was still there when B started"
    finally:
        for job_id in a_ids:
            a.client.post(f"/jobs/{job_id}/cancel")


def test_over_the_queued_quota_a_trigger_is_429_and_queues_nothing(server: str) -> None:
    ava = _ava(server)
    tenant = ava.client.headers["x-tenant-id"]
    quota = _operator(server).client.put(
        f"/tenants/{tenant}/quota", json={"max_running": 1, "max_queued": 2}
    )
    assert quota.status_code == 200, quota.text
    assert quota.json()["effective_max_queued"] == 2
    worker = ava.worker("python", PY_SHORT, network="none")["id"]
    first = ava.trigger(worker, {"s": 30}).json()["id"]
    ava.wait_for(first, until=lambda j: j["status"] == "running")
    queued = [ava.trigger(worker, {"s": 0}) for _ in range(2)]
    assert [r.status_code for r in queued] == [202, 202]
    refused = ava.trigger(worker, {"s": 0})
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused.headers["retry-after"]) > 0
    assert ava.client.get("/jobs").json()["meta"]["total"] == 3  # nothing queued
    metrics = httpx.get(f"{server}/metrics").text
    assert f'ava_tenant_jobs{{status="queued",tenant="{tenant}"}} 2.0' in metrics
    assert f'ava_tenant_jobs{{status="running",tenant="{tenant}"}} 1.0' in metrics
    # the running quota of 1 holds the other two in the queue while the first runs
    assert all(
        ava.client.get(f"/jobs/{r.json()['id']}").json()["status"] == "queued" for r in queued
    )
    ava.client.post(f"/jobs/{first}/cancel")
    ends = [ava.wait_for(r.json()["id"]) for r in queued]
    assert [j["status"] for j in ends] == ["succeeded", "succeeded"]
    # one at a time: the second started only after the first had finished
    assert ends[1]["started_at"] >= ends[0]["finished_at"]


def test_only_the_operator_sets_quotas(server: str) -> None:
    ava = _ava(server)
    tenant = ava.client.headers["x-tenant-id"]
    own = ava.client.put(f"/tenants/{tenant}/quota", json={"max_queued": 1_000_000})
    assert own.status_code == 403, own.text
    assert ava.client.get(f"/tenants/{tenant}/quota").json()["max_queued"] is None
    assert ava.client.get("/tenants/ten_other/quota").status_code == 403
    bad = _operator(server).client.put(f"/tenants/{tenant}/quota", json={"max_queued": 0})
    assert bad.status_code == 422, bad.text


def test_rerun_with_and_without_same_version(server: str) -> None:
    ava = _ava(server)
    worker = ava.worker("python", sources.PY_RAISE, network="none")["id"]
    failed = ava.run(worker, {"why": "first"})
    assert failed["status"] == "failed"
    patched = ava.client.patch(f"/workers/{worker}", json={"source_code": sources.PY_ECHO})
    assert patched.json()["version"] == 2
    current = ava.client.post(f"/jobs/{failed['id']}/rerun")
    assert current.status_code == 202, current.text
    assert current.json()["rerun_of"] == failed["id"]
    rerun = ava.wait_for(current.json()["id"])
    assert (rerun["status"], rerun["worker_version"]) == ("succeeded", 2)
    assert rerun["result"] == {"echo": {"why": "first"}}  # the same input
    pinned = ava.client.post(f"/jobs/{failed['id']}/rerun", params={"same_version": "true"})
    assert pinned.status_code == 202, pinned.text
    again = ava.wait_for(pinned.json()["id"])
    assert (again["status"], again["worker_version"], again["rerun_of"]) == (
        "failed",
        1,
        failed["id"],
    )
    found = ava.client.get("/jobs", params={"filter[error_type]": failed["error"]["type"]})
    assert {j["id"] for j in found.json()["data"]} == {failed["id"], again["id"]}
    window = {
        "filter[created_after]": failed["created_at"],
        "filter[created_before]": "9999-01-01T00:00:00Z",
    }
    assert {j["id"] for j in ava.client.get("/jobs", params=window).json()["data"]} == {
        rerun["id"],
        again["id"],
    }


def test_rerun_refuses_an_unfinished_job_and_bad_filters(server: str) -> None:
    ava = _ava(server)
    worker = ava.worker("python", sources.PY_SLEEP, network="none")["id"]
    job = ava.trigger(worker, {"s": 30}).json()["id"]
    refused = ava.client.post(f"/jobs/{job}/rerun")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "job_not_finished"
    ava.client.post(f"/jobs/{job}/cancel")
    for bad in ("yesterday", "2026-13-01T00:00:00Z", "2026-01-01T00:00:00"):
        resp = ava.client.get("/jobs", params={"filter[created_after]": bad})
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["code"] == "invalid_filter"
    assert ava.client.post("/jobs/job_nope/rerun").status_code == 404


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[WebhookReceiver]]]:
    with webhook_receiver([500]) as served:
        yield served


def test_a_webhook_is_retried_and_signed(server: str, receiver: tuple[str, Any]) -> None:
    url, handler = receiver
    ava = _ava(server)
    secret = ava.client.get("/webhook-secret").json()["secret"]
    assert ava.client.get("/webhook-secret").json()["secret"] == secret  # created once
    worker = ava.worker("python", sources.PY_ECHO, network="none", webhook_url=url)
    job = ava.run(worker["id"], {"n": 1})
    deadline = time.monotonic() + 30
    while len(handler.seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(handler.seen) == 2, "the failed first delivery was retried"
    sent_headers, body = handler.seen[1]
    t, v1 = (part.split("=", 1)[1] for part in sent_headers["AVA-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)
    assert abs(time.time() - int(t)) < 60
    assert httpx.Response(200, content=body).json() == ava.client.get(f"/jobs/{job['id']}").json()
    # the receiver has answered; the platform records that answer just after: wait for it
    deadline = time.monotonic() + 10
    log = ava.client.get(f"/jobs/{job['id']}/deliveries").json()["data"]
    while log[0]["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.1)
        log = ava.client.get(f"/jobs/{job['id']}/deliveries").json()["data"]
    assert [(d["status"], [a["response_status"] for a in d["attempts"]]) for d in log] == [
        ("delivered", [500, 200])
    ]
    rotated = ava.client.post("/webhook-secret/rotate").json()["secret"]
    assert rotated != secret
    assert _ava(server, role="tenant-developer").client.get("/webhook-secret").status_code == 403
