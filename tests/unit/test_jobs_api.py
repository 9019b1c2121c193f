"""Job routes that need no engine, over real HTTP to the real app with containers scripted:
idempotent triggers and the input limit (moved down from the integration tier)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.scripted import scripted_server
from tests.support import headers


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        scripted_server(tmp_path / "ava.db", delay_s=0.01) as url,
        httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=30) as c,
    ):
        yield c


def _worker(client: httpx.Client) -> str:
    resp = client.post("/workers", json={"name": "w", "runtime": "python", "source_code": "x"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_idempotency_key_returns_the_first_job(client: httpx.Client) -> None:
    url = f"/workers/{_worker(client)}/jobs"
    key = {"Idempotency-Key": "deploy-1234"}
    first = client.post(url, json={"input": {"a": 1}}, headers=key)
    second = client.post(url, json={"input": {"a": 2}}, headers=key)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["input"] == {"a": 1}
    other = client.post(url, json={"input": {"a": 1}}, headers={"Idempotency-Key": "other"})
    assert other.json()["id"] != first.json()["id"]
    assert client.get(url).json()["meta"]["total"] == 2
    past = client.get(url, params={"page": 7, "per_page": 1}).json()  # past the last job
    assert past["data"] == [] and past["meta"] == {"page": 7, "per_page": 1, "total": 2}


def test_input_over_one_mib_is_refused_with_413_and_queues_nothing(client: httpx.Client) -> None:
    worker_id = _worker(client)
    resp = client.post(
        f"/workers/{worker_id}/jobs", json={"input": {"blob": "x" * (1024 * 1024 + 1)}}
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] in {"input_too_large", "payload_too_large"}
    assert client.get(f"/workers/{worker_id}/jobs").json()["meta"]["total"] == 0


def test_a_job_shows_the_settings_it_runs_with(client: httpx.Client) -> None:
    worker_id = _worker(client)
    client.patch(f"/workers/{worker_id}", json={"config": {"K": "a"}, "memory_mb": 128})
    job = client.post(f"/workers/{worker_id}/jobs", json={"input": {}}).json()
    run = client.get(f"/jobs/{job['id']}").json()["run"]
    assert run["config"] == {"K": "a"} and run["memory_mb"] == 128
    assert run["runtime"] == "python" and run["entrypoint"] == "main.py"
    assert set(run) >= {"secrets", "timeout_seconds", "max_retries", "cpus", "network", "image"}
