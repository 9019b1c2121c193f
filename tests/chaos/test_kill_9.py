"""`kill -9` of the platform at random points of a 300-job burst, restarted each time: no job
is lost, none runs twice (each handler prints a random token; no job's logs hold two from
succeeded attempts), no container is left. Triggers cut by a kill are sent again under the
same Idempotency-Key, as a client should."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.support import (
    START_S,
    all_jobs,
    burst,
    make_worker,
    successful_tokens,
    wait_drained,
    wait_no_containers,
)
from tests.support import headers, process_server

# bounded: about a minute on an idle 2-core machine; the bound leaves room for a loaded one
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

JOBS = 300
KILLS = 5
ENV = {
    "AVA_MAX_CONCURRENT_JOBS": "8",
    "AVA_MAX_WORKER_LOST": "20",  # a job may be cut by every kill and still finish
    "AVA_RETRY_BASE_S": "0.2",
    "AVA_POLL_INTERVAL_S": "0.2",
}


def _merge(accepted: dict[str, str], new: dict[str, str]) -> None:
    for key, job_id in new.items():
        assert accepted.setdefault(key, job_id) == job_id, f"{key} queued twice"


def test_kill_9_at_random_points_loses_and_doubles_nothing(
    shell_image: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("AVA_CHAOS_SEED", time.time()))
    rng = random.Random(seed)
    db, hdrs = tmp_path / "ava.db", headers()
    keys = [f"chaos-{i}" for i in range(JOBS)]
    accepted: dict[str, str] = {}
    worker = ""
    for kill in range(KILLS + 1):
        with (
            process_server(db, START_S, **ENV) as (url, proc),
            httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=30) as client,
        ):
            worker = worker or make_worker(client)
            pending = [k for k in keys if k not in accepted]
            if kill == KILLS:  # the last run: nothing is killed, everything must end
                _merge(accepted, burst(client, worker, pending))
                assert len(accepted) == JOBS
                wait_drained(client, timeout_s=780)
                jobs = all_jobs(client)
                break
            got: dict[str, str] = {}
            sender = threading.Thread(
                target=lambda c=client, w=worker, p=pending, g=got: g.update(burst(c, w, p))
            )
            sender.start()
            time.sleep(rng.uniform(0.5, 4.0))  # mid-burst, or mid-run once all are queued
            proc.kill()
            proc.wait(timeout=30)
            sender.join(timeout=120)
            _merge(accepted, got)
    wait_no_containers(db)  # the last (clean) stop and each restart's recovery removed them
    by_id = {j["id"]: j for j in jobs}
    assert sorted(by_id) == sorted(accepted.values()), f"seed {seed}: lost or extra jobs"
    lost = [j["id"] for j in jobs if j["status"] != "succeeded"]
    assert lost == [], f"seed {seed}"
    with (
        process_server(db, START_S, **ENV) as (url, _),
        httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=30) as client,
    ):
        doubled = [j["id"] for j in jobs if len(successful_tokens(client, j)) != 1]
        won = [sum(a["outcome"] == "succeeded" for a in j["attempts"]) for j in jobs]
    cut = sum(a["outcome"] == "worker_lost" for j in jobs for a in j["attempts"])
    print(
        f"chaos kill -9: seed={seed} jobs={len(jobs)} kills={KILLS} restarts={KILLS} "
        f"attempts_cut={cut} lost={len(lost)} doubled={len(doubled)}"
    )
    assert doubled == [], f"seed {seed}: tokens of two succeeded attempts"
    assert set(won) == {1}
