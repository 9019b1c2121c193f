"""Under concurrent requests, a job is readable the moment its trigger returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.scripted import scripted_server
from tests.support import headers


def test_concurrent_triggers_with_wait_always_find_their_job(tmp_path: Path) -> None:
    with scripted_server(tmp_path / "ava.db", delay_s=0.05) as url:
        hdrs = headers()
        limits = httpx.Limits(max_connections=64)
        with httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=60, limits=limits) as c:
            worker = c.post("/workers", json={"name": "w", "runtime": "python", "source_code": "x"})
            wid = worker.json()["id"]

            def trigger(i: int) -> int:
                resp = c.post(f"/workers/{wid}/jobs", params={"wait": 10}, json={"input": {"i": i}})
                return resp.status_code

            with ThreadPoolExecutor(40) as pool:
                codes = list(pool.map(trigger, range(120)))
    assert set(codes) <= {200, 202}, sorted(set(codes))
