"""A completion webhook whose first delivery failed is retried after the platform restarts:
the delivery and its backoff are stored, not held in memory (real server, real engine)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import sources
from tests.integration.conftest import Ava
from tests.support import WebhookReceiver, headers, thread_server, webhook_receiver

pytestmark = pytest.mark.docker

ENV = {
    "AVA_WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver listens on loopback
    # long enough that the retry cannot happen before the platform is stopped
    "AVA_WEBHOOK_RETRY_BASE_S": "4",
}


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[WebhookReceiver]]]:
    with webhook_receiver([500]) as served:
        yield served


def _deliveries(ava: Ava, job_id: str) -> list[tuple[str, list[Any]]]:
    resp = ava.client.get(f"/jobs/{job_id}/deliveries")
    assert resp.status_code == 200, resp.text
    log = resp.json()["data"]
    return [(d["status"], [a["response_status"] for a in d["attempts"]]) for d in log]


def _until(check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_failed_delivery_is_retried_after_a_restart(
    runtime_images: list[str], tmp_path: Path, receiver: tuple[str, Any]
) -> None:
    url, handler = receiver
    db = tmp_path / "ava.db"
    hdrs = headers()  # one tenant across both runs
    with thread_server(db, **ENV) as server:
        ava = Ava(httpx.Client(base_url=f"{server}/v1/ava", headers=hdrs, timeout=60))
        worker = ava.worker("python", sources.PY_ECHO, network="none", webhook_url=url)
        job = ava.run(worker["id"], {"n": 1})
        assert job["status"] == "succeeded", job
        first = _until(lambda: _deliveries(ava, job["id"]) == [("pending", [500])], 20)
        assert first, _deliveries(ava, job["id"])
    assert len(handler.seen) == 1  # stopped before the retry was due

    with thread_server(db, **ENV) as server:
        ava = Ava(httpx.Client(base_url=f"{server}/v1/ava", headers=hdrs, timeout=60))
        done = _until(lambda: _deliveries(ava, job["id"]) == [("delivered", [500, 200])], 30)
        assert done, _deliveries(ava, job["id"])
        assert len(handler.seen) == 2
        (first_headers, _), (again_headers, again_body) = handler.seen
        # the same delivery of the same finished job, sent again
        assert again_headers["AVA-Delivery"] == first_headers["AVA-Delivery"]
        assert httpx.Response(200, content=again_body).json() == (
            ava.client.get(f"/jobs/{job['id']}").json()
        )
