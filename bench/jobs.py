"""Job latency and throughput against plain `docker run --rm -i --network none` of the same
image, hardening flags and envelope, measured in the same run (every ratio's baseline).

(a) warm latency: sequential no-op jobs (POST ?wait → result in hand), paced one every 300 ms
    (an agent's think time), on a platform whose pool is warm: p50 and p90 against the plain
    run's, for python (50 jobs) and nodejs, deno, shell (20 each);
(b) the highest pace at which jobs still find a warm container (90% or more);
(c) cold latency: the same jobs with the pool off (AVA_WARM_POOL=0);
(d) burst: 40 no-op jobs at concurrency 4, jobs/s against 40 plain runs 4 at a time.

Run: .venv/bin/python bench/jobs.py  (or `make bench`); `--parts a --runtimes python` runs a
part of it (`--help` for the options).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ava_platform.images import build_images, runtime_image_tag
from tests.support import headers, process_server

NOOP = {
    "python": ("main.py", "def handler(input, env):\n    return {'ok': True}\n"),
    "nodejs": ("index.js", "module.exports = async () => ({ ok: true });\n"),
    "deno": ("main.ts", "export default async function handler() { return { ok: true }; }\n"),
    "shell": ("main.sh", 'echo \'{"ok": true}\' > "$AVA_RESULT"\n'),
}
WARM_JOBS = {"python": 50, "nodejs": 20, "deno": 20, "shell": 20}
PACE_S = 0.3
COLD_ROUNDS = 15
BURST, CONCURRENCY, BURST_ROUNDS = 40, 4, 3
FLAGS = [
    "--user", "10001:10001", "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=64m",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", "256",
    "--memory", "256m", "--memory-swap", "256m", "--cpus", "1", "--network", "none",
]  # fmt: skip


def envelope(runtime: str, i: int) -> bytes:
    entrypoint, source = NOOP[runtime]
    env = {"AVA_JOB_ID": f"job_b{i}", "AVA_WORKER_ID": "wkr_b", "AVA_ATTEMPT": "1"}
    body = {
        "v": 1, "nonce": f"{i:032x}", "job_id": f"job_b{i}", "worker_id": "wkr_b", "attempt": 1,
        "entrypoint": entrypoint, "source": source, "bundle_dir": None, "input": {}, "env": env,
    }  # fmt: skip
    return json.dumps(body).encode() + b"\n"


def plain_run(runtime: str, i: int = 0) -> float:
    argv = ["docker", "run", "--rm", "-i", *FLAGS, runtime_image_tag(runtime)]
    start = time.perf_counter()
    out = subprocess.run(argv, input=envelope(runtime, i), capture_output=True, check=True)
    took = time.perf_counter() - start
    assert b"AVA-RESULT-" in out.stdout, out
    return took


@contextmanager
def platform(tmp: str, name: str, **env: str) -> Iterator[httpx.Client]:
    env.setdefault("AVA_MAX_CONCURRENT_JOBS", str(CONCURRENCY))
    with (
        process_server(Path(tmp) / f"{name}.db", **env) as (url, _),
        httpx.Client(
            base_url=f"{url}/v1/ava",
            headers=headers(),
            timeout=120,
            limits=httpx.Limits(max_connections=BURST + 4),
        ) as client,
    ):
        client.base_url_root = url  # type: ignore[attr-defined]
        yield client


def worker(client: httpx.Client, runtime: str) -> str:
    entrypoint, source = NOOP[runtime]
    body = {
        "name": f"noop-{runtime}",
        "runtime": runtime,
        "entrypoint": entrypoint,
        "source_code": source,
        "network": "none",
    }
    return str(client.post("/workers", json=body).json()["id"])


def job(client: httpx.Client, worker_id: str) -> float:
    start = time.perf_counter()
    resp = client.post(f"/workers/{worker_id}/jobs", params={"wait": 60}, json={"input": {}})
    took = time.perf_counter() - start
    assert resp.status_code == 200 and resp.json()["status"] == "succeeded", resp.text
    return took


def hits(client: httpx.Client) -> int:
    url = client.base_url_root  # type: ignore[attr-defined]
    return int(httpx.get(f"{url}/readyz", timeout=10).json()["pool"]["hits"])


def settle(client: httpx.Client, limit_s: float = 30.0) -> None:
    """Waits for the pool to be full and every ended container removed: a refill or a removal
    left over from AVA's turn would take engine time from the plain runs measured next, and
    flatter the ratio."""
    url = client.base_url_root  # type: ignore[attr-defined]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        pool = httpx.get(f"{url}/readyz", timeout=10).json()["pool"]
        full = all(s["creating"] == 0 and s["idle"] >= s["target"] for s in pool["shapes"])
        if full and pool["removals_pending"] == 0:
            return
        time.sleep(0.1)


def paced(client: httpx.Client, worker_id: str, n: int, pace_s: float) -> tuple[list[float], int]:
    """n jobs, one every pace_s; their latencies and how many found a warm container."""
    before, took = hits(client), []
    for _ in range(n):
        t0 = time.perf_counter()
        took.append(job(client, worker_id))
        time.sleep(max(0.0, pace_s - (time.perf_counter() - t0)))
    return took, hits(client) - before


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def burst(run_one: object) -> float:
    with ThreadPoolExecutor(BURST) as pool:
        t0 = time.perf_counter()
        list(pool.map(run_one, range(BURST)))  # type: ignore[call-overload]
        return BURST / (time.perf_counter() - t0)


def plain_burst(runtime: str) -> float:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda i: plain_run(runtime, i), range(BURST)))
        return BURST / (time.perf_counter() - t0)


def row(name: str, plain: float, ours: float, unit: str = "s") -> None:
    print(f"{name:<44}{plain:>10.3f}{ours:>10.3f}{ours / plain:>8.2f}  {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="abcd", help="which of (a)-(d) to run, e.g. 'ad'")
    parser.add_argument(
        "--runtimes", default=",".join(NOOP), help="runtimes of (a), comma-separated"
    )
    args = parser.parse_args()
    parts, runtimes = set(args.parts), [r for r in args.runtimes.split(",") if r in NOOP]
    build_images(list(NOOP), log=lambda _l: None)
    for runtime in NOOP:
        plain_run(runtime)  # the page cache warm for both sides
    print(f"{'measure':<44}{'docker':>10}{'AVA':>10}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        with platform(tmp, "warm") as client:
            for runtime in runtimes if "a" in parts else []:
                n = WARM_JOBS[runtime]
                wid = worker(client, runtime)
                paced(client, wid, 5, PACE_S)  # demand: the pool grows for this shape
                settle(client)  # "with the pool warm": its containers made and started
                ours, warm = paced(client, wid, n, PACE_S)
                settle(client)
                plain = [plain_run(runtime, i) for i in range(min(n, 20))]
                row(f"(a) warm {runtime} p50 ({warm}/{n} warm)", pct(plain, 0.5), pct(ours, 0.5))
                row(f"(a) warm {runtime} p90", pct(plain, 0.9), pct(ours, 0.9))
            if "b" in parts:
                highest_pace(client)
            if "d" in parts:
                burst_ratio(client)
        if "c" in parts:
            cold(tmp)
    print("ratios: AVA time / docker time for (a) and (c); AVA rate / docker rate for (d)")
    print("targets: warm p50 <= 0.05, p90 <= 0.10; cold <= 0.70; burst >= 1.6")


def highest_pace(client: httpx.Client) -> None:
    wid = worker(client, "python")
    paced(client, wid, 5, PACE_S)
    best = None
    for pace in (0.3, 0.2, 0.15, 0.1, 0.05):
        _, warm = paced(client, wid, 20, pace)
        if warm >= 18:
            best = pace
    print(f"(b) highest pace with >= 90% warm: {f'{1 / best:.1f} jobs/s' if best else 'none'}")


def burst_ratio(client: httpx.Client) -> None:
    wid = worker(client, "python")
    paced(client, wid, 5, PACE_S)  # demand: the pool is full as a burst arrives
    rates = []
    for _ in range(BURST_ROUNDS):
        settle(client)
        rates.append((plain_burst("python"), burst(lambda _i: job(client, wid))))
    plain_tp = statistics.median(r[0] for r in rates)
    ours_tp = statistics.median(r[1] for r in rates)
    print(
        f"{'(d) burst 40 @4, jobs/s (ratio: AVA/docker)':<44}"
        f"{plain_tp:>10.2f}{ours_tp:>10.2f}{ours_tp / plain_tp:>8.2f}"
    )


def cold(tmp: str) -> None:
    with platform(tmp, "cold", AVA_WARM_POOL="0") as client:
        wid = worker(client, "python")
        job(client, wid)
        plain, ours = [], []
        for i in range(COLD_ROUNDS):  # interleaved: drift in the machine hits both alike
            plain.append(plain_run("python", i))
            ours.append(job(client, wid))
        row("(c) cold python p50 (pool off)", pct(plain, 0.5), pct(ours, 0.5))


if __name__ == "__main__":
    main()
