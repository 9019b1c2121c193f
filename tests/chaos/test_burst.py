"""A 1,000-job burst on the real engine through a platform server process: every job ends
(1,000 terminal jobs, all succeeded), and no container is left behind."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.chaos.support import (
    START_S,
    TOKEN_JOB,
    all_jobs,
    burst,
    make_worker,
    wait_drained,
    wait_no_containers,
)
from tests.support import headers, process_server

# bounded: a few minutes on an idle 2-core machine; the bound leaves room for a loaded one
pytestmark = [pytest.mark.docker, pytest.mark.timeout(1500)]

JOBS = 1000
ENV = {
    # no-op jobs wait on the engine, not on the CPU: more at once keeps it busy
    "AVA_MAX_CONCURRENT_JOBS": "12",
    "AVA_WARM_MAX": "12",
    "AVA_WARM_MAX_IDLE": "12",
    "AVA_POLL_INTERVAL_S": "0.2",
}


def test_a_1000_job_burst_ends_with_1000_terminal_jobs(shell_image: str, tmp_path: Path) -> None:
    db = tmp_path / "ava.db"
    with (
        process_server(db, START_S, **ENV) as (url, _),
        httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=60) as client,
    ):
        worker = make_worker(client, TOKEN_JOB)
        started = time.monotonic()
        accepted = burst(client, worker, [f"burst-{i}" for i in range(JOBS)])
        assert len(accepted) == JOBS
        queued_s = time.monotonic() - started
        wait_drained(client, timeout_s=1400)
        took_s = time.monotonic() - started
        jobs = all_jobs(client)
    assert len(jobs) == JOBS
    assert {j["status"] for j in jobs} == {"succeeded"}
    print(f"chaos burst: jobs={JOBS} queued_in={queued_s:.1f}s drained_in={took_s:.1f}s")
    wait_no_containers(db)
