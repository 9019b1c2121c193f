"""Platform overhead on no-op python jobs, against plain `docker run --rm` measured in the same run.

(a) latency: median of N sequential jobs, POST /jobs?wait=60 until the result is in hand,
    against `docker run --rm -i` of the same image fed the same envelope on stdin;
(b) throughput: 40 jobs at concurrency 4 against 40 `docker run`s, 4 at a time; median of
    3 alternated bursts each.
Both sides use the same hardening flags, so the ratio is what the platform itself adds.

Run: .venv/bin/python bench/jobs.py  (or `make bench`)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ava_platform.images import build_images, runtime_image_tag
from tests.support import headers, process_server

NOOP = "def handler(input, env):\n    return {'ok': True}\n"
ROUNDS = 15
BURST = 40
BURST_ROUNDS = 3
CONCURRENCY = 4
IMAGE = runtime_image_tag("python")
DOCKER_RUN = [
    "docker",
    "run",
    "--rm",
    "-i",
    "--user",
    "10001:10001",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,exec,nosuid,nodev,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "256",
    "--memory",
    "256m",
    "--memory-swap",
    "256m",
    "--cpus",
    "1",
    "--network",
    "bridge",
    IMAGE,
]


def envelope(i: int) -> bytes:
    return (
        json.dumps(
            {
                "v": 1,
                "nonce": f"{i:032x}",
                "job_id": f"job_bench{i}",
                "worker_id": "wkr_bench",
                "attempt": 1,
                "entrypoint": "main.py",
                "source": NOOP,
                "bundle_dir": None,
                "input": {},
                "env": {
                    "AVA_JOB_ID": f"job_bench{i}",
                    "AVA_WORKER_ID": "wkr_bench",
                    "AVA_ATTEMPT": "1",
                },
            }
        ).encode()
        + b"\n"
    )


def plain_run(i: int) -> float:
    start = time.perf_counter()
    out = subprocess.run(DOCKER_RUN, input=envelope(i), capture_output=True, check=True)
    took = time.perf_counter() - start
    assert b"AVA-RESULT-" in out.stdout, out
    return took


def platform_run(client: httpx.Client, worker_id: str) -> float:
    start = time.perf_counter()
    resp = client.post(f"/v1/ava/workers/{worker_id}/jobs", params={"wait": 60}, json={"input": {}})
    took = time.perf_counter() - start
    assert resp.status_code == 200 and resp.json()["status"] == "succeeded", resp.text
    return took


def plain_burst() -> float:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        t0 = time.perf_counter()
        list(pool.map(plain_run, range(BURST)))
        return BURST / (time.perf_counter() - t0)


def platform_burst(client: httpx.Client, worker_id: str) -> float:
    """All 40 queued at once; the platform runs 4 at a time. Each request holds its connection
    until its job ends (?wait), so waiting costs the server nothing."""

    def run_one(_: int) -> str:
        resp = client.post(
            f"/v1/ava/workers/{worker_id}/jobs", params={"wait": 60}, json={"input": {}}
        )
        assert resp.status_code in (200, 202), resp.text
        return str(resp.json()["status"])

    with ThreadPoolExecutor(BURST) as pool:
        t0 = time.perf_counter()
        statuses = list(pool.map(run_one, range(BURST)))
        rate = BURST / (time.perf_counter() - t0)
    assert statuses == ["succeeded"] * BURST, statuses
    return rate


def main() -> None:
    build_images(["python"], log=lambda _l: None)
    plain_run(0)  # warm the page cache for both sides
    with (
        tempfile.TemporaryDirectory() as tmp,
        process_server(Path(tmp) / "bench.db", AVA_MAX_CONCURRENT_JOBS=str(CONCURRENCY)) as (
            url,
            _,
        ),
    ):
        client = httpx.Client(
            base_url=url,
            headers=headers(),
            timeout=120,
            limits=httpx.Limits(max_connections=BURST + 4),
        )
        worker = client.post(
            "/v1/ava/workers", json={"name": "noop", "runtime": "python", "source_code": NOOP}
        ).json()
        platform_run(client, worker["id"])
        plain, ours = [], []
        for i in range(ROUNDS):  # interleaved, so drift in the machine hits both sides alike
            plain.append(plain_run(i))
            ours.append(platform_run(client, worker["id"]))
        p_med, o_med = statistics.median(plain), statistics.median(ours)

        plain_rates, our_rates = [], []
        for _ in range(BURST_ROUNDS):  # alternated, as above: one burst is a few noisy seconds
            plain_rates.append(plain_burst())
            our_rates.append(platform_burst(client, worker["id"]))
        plain_tp, ours_tp = statistics.median(plain_rates), statistics.median(our_rates)

    print(f"{'measure':<40}{'docker run':>12}{'AVA':>12}{'ratio':>8}")
    print(
        f"{'(a) no-op job latency, median s':<40}{p_med:>12.3f}{o_med:>12.3f}{o_med / p_med:>8.2f}"
    )
    print(
        f"{'(b) 40 jobs @4, jobs/s':<40}{plain_tp:>12.2f}{ours_tp:>12.2f}{plain_tp / ours_tp:>8.2f}"
    )
    print("ratio = AVA time / docker run time (1.10 is the target ceiling for both)")
    print(f"latency samples s: docker run {sorted(round(x, 3) for x in plain)}")
    print(f"latency samples s: AVA        {sorted(round(x, 3) for x in ours)}")
    print(f"burst rates jobs/s: docker run {[round(x, 2) for x in plain_rates]}")
    print(f"burst rates jobs/s: AVA        {[round(x, 2) for x in our_rates]}")


if __name__ == "__main__":
    main()
