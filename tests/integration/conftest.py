"""Fixtures for tests on a real Docker engine with the real runtime images."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import headers, thread_server

# the shared server runs every attempt cold (tests find a job's container by its labels);
# tests/integration/test_warm_pool.py runs the same behaviours on prewarmed containers
FAST_RETRY_ENV = {"AVA_RETRY_BASE_S": "0.2", "AVA_MAX_CONCURRENT_JOBS": "4", "AVA_WARM_POOL": "0"}


def ava_containers() -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=ava.managed=1"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


@pytest.fixture(scope="session")
def runtime_images() -> list[str]:
    """All runtime images, built through the same code path as `make images`."""
    from ava_platform.executor.runtime_images import build_images

    reports = build_images(log=lambda _line: None)
    return [r.tag for r in reports]


@pytest.fixture(scope="session")
def jobs_server(
    runtime_images: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with thread_server(tmp_path_factory.mktemp("jobs") / "ava.db", **FAST_RETRY_ENV) as url:
        yield url


@pytest.fixture
def client(jobs_server: str) -> Iterator[httpx.Client]:
    """Admin client of a fresh tenant on the shared jobs server."""
    with httpx.Client(base_url=f"{jobs_server}/v1/ava", headers=headers(), timeout=120) as c:
        yield c


class Ava:
    """Small verbs for tests: make a worker, run a job, wait for a status."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def worker(self, runtime: str, source: str, **fields: Any) -> dict[str, Any]:
        body = {"name": f"test-{runtime}", "runtime": runtime, "source_code": source, **fields}
        resp = self.client.post("/workers", json=body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    def trigger(self, worker_id: str, input: Any = None, **params: Any) -> httpx.Response:
        return self.client.post(
            f"/workers/{worker_id}/jobs",
            json={"input": input if input is not None else {}},
            params=params,
        )

    def run(self, worker_id: str, input: Any = None, wait: int = 60) -> dict[str, Any]:
        resp = self.trigger(worker_id, input)
        assert resp.status_code == 202, resp.text
        return self.wait_for(resp.json()["id"], timeout_s=wait)

    def wait_for(
        self,
        job_id: str,
        timeout_s: float = 60,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        done = until or (lambda j: j["status"] in ("succeeded", "failed", "timed_out", "cancelled"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.client.get(f"/jobs/{job_id}").json()
            if done(job):
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not reach the state in {timeout_s}s: {job}")

    def logs(self, job_id: str) -> str:
        return self.client.get(f"/jobs/{job_id}/logs").text


@contextmanager
def tenant_ava(server: str) -> Iterator[Ava]:
    """Small verbs for a fresh tenant, with the admin role, on `server`."""
    with httpx.Client(base_url=f"{server}/v1/ava", headers=headers(), timeout=120) as c:
        yield Ava(c)


@pytest.fixture
def ava(client: httpx.Client) -> Ava:
    return Ava(client)


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "ava.db"
