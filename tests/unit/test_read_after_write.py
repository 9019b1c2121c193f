"""Under concurrent requests, a job is readable the moment its trigger returns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.scripted import scripted_server
from tests.support import headers


def test_concurrent_triggers_with_wait_always_find_their_job(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    with scripted_server(tmp_path / "ava.db", delay_s=0.05, **database_env) as url:
        hdrs = headers()
        limits = httpx.Limits(max_connections=64)
        with httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=60, limits=limits) as c:
            worker = c.post("/workers", json={"name": "w", "runtime": "python", "source_code": "x"})
            wid = worker.json()["id"]

            def trigger(i: int) -> tuple[int, int, dict[str, object]]:
                resp = c.post(f"/workers/{wid}/jobs", params={"wait": 10}, json={"input": {"i": i}})
                read = c.get(f"/jobs/{resp.json()['id']}")  # at once, under the same load
                return resp.status_code, read.status_code, read.json()

            with ThreadPoolExecutor(40) as pool:
                answers = list(pool.map(trigger, range(120)))
    assert {code for code, _, _ in answers} <= {200, 202}
    assert [read for _, read, _ in answers] == [200] * 120
    assert [job["input"] for _, _, job in answers] == [{"i": i} for i in range(120)]
    # a trigger that answered 200 waited for the end: the job read after it has ended too
    for code, _, job in answers:
        if code == 200:
            assert job["status"] == "succeeded" and job["result"] == job["input"]
