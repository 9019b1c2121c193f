"""API throughput against a bare Litestar handler, side by side in one run (#16).

1. Seeds a SQLite file through the real services (100 workers, 200 finished jobs in the
   measured tenant; a fake executor runs the jobs, so no container is involved).
2. Starts `ava serve` on it and the bare app of bench/bare_app.py on the same server stack
   (uvicorn, same loop and HTTP parser), the bare app answering AVA's own JSON.
3. Loads each route on both with wrk (same threads, connections, duration), alternating
   rounds, and prints req/s and AVA ÷ bare (target ≥ 0.5 for one resource, ≥ 0.35 for a page
   of 20).
4. p99 of GET /jobs/{id} from a sequential client (bench/latency_probe.py, a process of its
   own) while 40 jobs run at concurrency 4 on the same process, each printing a line every
   20 ms, with an SSE follower per job (target ≤ 20 ms); the same client on the idle process
   is printed beside it, and the bare app's p99 (a process with no work, on the same two
   cores) probed while the same job load runs again. For each, the time its loop thread ran
   and the time it waited for a CPU during the load: what of the tail is the machine's.

Needs wrk and the python runtime image (`make bench` sees to both).
Run: .venv/bin/python bench/api.py
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from ava_platform.config import load_settings  # noqa: E402
from ava_platform.executor.fake import FakeExecutor  # noqa: E402
from ava_platform.models import JobStatus, Role, Runtime, WorkerCreate  # noqa: E402
from ava_platform.service.auth import Principal  # noqa: E402
from ava_platform.wiring import Platform  # noqa: E402
from tests.support import (  # noqa: E402
    free_port,
    headers,
    process_server,
    server_env,
    wait_healthy,
)

TENANT = "ten_bench"
WORKERS, JOBS = 100, 200
THREADS, CONNECTIONS, DURATION_S, ROUNDS = 2, 32, 4, 5
LOAD_JOBS, LOAD_CONCURRENCY = 40, 4
CHATTY = (
    "import time\n"
    "def handler(input, env):\n"
    "    for i in range(25):\n"
    "        print('line', i, flush=True)\n"
    "        time.sleep(0.02)\n"
    "    return {'ok': True}\n"
)


async def seed(db_path: Path) -> None:
    os.environ.update(server_env(db_path))
    platform = Platform(load_settings(db_path=db_path), executor=FakeExecutor())
    await platform.start()
    try:
        who = Principal(tenant_id=TENANT, user_id="usr_bench", role=Role.ADMIN)
        ids = []
        for i in range(WORKERS):
            data = WorkerCreate(
                name=f"bench worker {i}",
                description="a worker of the API bench",
                runtime=Runtime.PYTHON,
                config={"region": "eu", "level": i},
                source_code="def handler(input, env):\n    return input\n",
            )
            ids.append((await platform.workers.create(who, data)).id)
        jobs = [
            (await platform.jobs.trigger(who, ids[i % WORKERS], {"n": i, "text": "hello"}))[0]
            for i in range(JOBS)
        ]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [await platform.jobs.status(job.id) for job in jobs]
            if all(s is JobStatus.SUCCEEDED for s in statuses):
                return
            await asyncio.sleep(0.1)
        raise SystemExit("seeding: the jobs did not finish")
    finally:
        await platform.stop()


@contextmanager
def bare_server(fixtures: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port)]
    argv += ["--log-level", "warning", "--loop", "uvloop", "--http", "httptools"]  # as `ava serve`
    env = {**os.environ, "AVA_BENCH_FIXTURES": str(fixtures), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy_bare(url)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def wait_healthy_bare(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/v1/ava/workers", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the bare app did not start")


def wrk(url: str, hdrs: dict[str, str]) -> float:
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{DURATION_S}s"]
    for name, value in hdrs.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


def fixtures_of(client: httpx.Client, tmp: Path) -> tuple[dict[str, str], Path]:
    workers = client.get("/workers", params={"per_page": 20}).json()
    jobs = client.get("/jobs", params={"per_page": 20}).json()
    worker_id, job_id = workers["data"][0]["id"], jobs["data"][0]["id"]
    data = {
        "worker": client.get(f"/workers/{worker_id}").json(),
        "job": client.get(f"/jobs/{job_id}").json(),
        "workers": workers,
        "jobs": jobs,
    }
    path = tmp / "fixtures.json"
    path.write_text(json.dumps(data))
    routes = {
        "GET /workers/{id}": f"/v1/ava/workers/{worker_id}",
        "GET /jobs/{id}": f"/v1/ava/jobs/{job_id}",
        "GET /workers (20)": "/v1/ava/workers?per_page=20",
        "GET /jobs (20)": "/v1/ava/jobs?per_page=20",
    }
    return routes, path


def throughput(ava: str, bare: str, routes: dict[str, str], hdrs: dict[str, str]) -> None:
    print(f"wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION_S}s, {ROUNDS} alternating rounds, median")
    print(f"{'route':<20}{'bare req/s':>12}{'AVA req/s':>12}{'AVA/bare':>10}{'target':>9}")
    for label, path in routes.items():
        bares, ours = [], []
        for _ in range(ROUNDS):
            bares.append(wrk(bare + path, {}))
            ours.append(wrk(ava + path, hdrs))
        b, a = statistics.median(bares), statistics.median(ours)
        target = "0.35" if "(20)" in label else "0.50"
        print(f"{label:<20}{b:>12.0f}{a:>12.0f}{a / b:>10.2f}{target:>9}")


@contextmanager
def latency_probe(url: str, path: str, hdrs: dict[str, str]) -> Iterator[list[float]]:
    """bench/latency_probe.py sampling `url + path` while the block runs; the list holds its
    latencies (ms) once the block ends."""
    argv = [sys.executable, str(ROOT / "bench" / "latency_probe.py"), url, path, json.dumps(hdrs)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    samples: list[float] = []
    try:
        time.sleep(0.5)  # its interpreter started and its first requests made
        yield samples
    finally:
        out, _ = proc.communicate(timeout=60)
    samples.extend(json.loads(out))


def follow(url: str, hdrs: dict[str, str], job_id: str) -> int:
    """Follows the job's log stream to its end; the number of `data:` lines it carried. On a
    raw socket: followed by httpx, 40 streams cost this process as much CPU as the AVA
    process spent running the jobs, on the same two cores."""
    parts = urlsplit(url)
    path = f"/v1/ava/jobs/{job_id}/logs?follow=true"
    lines = [f"GET {path} HTTP/1.1", f"host: {parts.netloc}", "accept: text/event-stream"]
    lines += [*(f"{k}: {v}" for k, v in hdrs.items()), "connection: close"]
    raw = bytearray()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"following {job_id}: {head[:200]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return sum(line.startswith(b"data:") for line in body.split(b"\n"))


def dechunk(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        end = body.index(b"\r\n", at)
        size = int(body[at:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2 : end + 2 + size]
        at = end + 2 + size + 2


@contextmanager
def loop_thread_clock(pid: int) -> Iterator[list[float]]:
    """Seconds the process's main thread (its event loop) spent on a CPU and runnable but
    waiting for one while the block ran, from /proc/PID/schedstat; the list holds the two once
    the block ends. A latency tail made of the second is the machine's contention for its two
    cores, not the process's own work."""

    def read() -> list[float]:
        ran_ns, waited_ns = Path(f"/proc/{pid}/schedstat").read_text().split()[:2]
        return [int(ran_ns) / 1e9, int(waited_ns) / 1e9]

    before, spent = read(), []
    yield spent
    spent.extend(after - first for after, first in zip(read(), before, strict=True))


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def job_load(client: httpx.Client, url: str, hdrs: dict[str, str], worker: str) -> str:
    """40 jobs at concurrency 4 on the AVA process, an SSE follower each; what they did."""
    with ThreadPoolExecutor(LOAD_JOBS) as pool:
        started = time.perf_counter()
        ids = [
            client.post(f"/v1/ava/workers/{worker}/jobs", json={}).json()["id"]
            for _ in range(LOAD_JOBS)
        ]
        followed = [pool.submit(follow, url, hdrs, job_id) for job_id in ids]
        lines = sum(f.result(timeout=300) for f in followed)
        elapsed = time.perf_counter() - started
    ends = [client.get(f"/v1/ava/jobs/{i}").json()["status"] for i in ids]
    return (
        f"{lines} lines followed, {elapsed:.1f} s, {ends.count('succeeded')}/{LOAD_JOBS} succeeded"
    )


def under_load(
    ava: tuple[str, int], bare: tuple[str, int], hdrs: dict[str, str], job_path: str
) -> None:
    (url, ava_pid), (bare_url, bare_pid) = ava, bare
    with httpx.Client(base_url=url, headers=hdrs, timeout=30) as client:
        with latency_probe(url, job_path, hdrs) as idle:
            time.sleep(3.0)
        worker = client.post(
            "/v1/ava/workers",
            json={"name": "chatty", "runtime": "python", "source_code": CHATTY, "network": "none"},
        ).json()["id"]
        client.post(
            f"/v1/ava/workers/{worker}/jobs", params={"wait": 60}, json={}
        ).raise_for_status()
        with latency_probe(url, job_path, hdrs) as loaded, loop_thread_clock(ava_pid) as clock:
            load = job_load(client, url, hdrs, worker)
        # the floor: a process with no work of its own, probed alone while the same job load
        # runs again (two probes at once would each bend the other's tail on two cores)
        with (
            latency_probe(bare_url, job_path, {}) as bare_loaded,
            loop_thread_clock(bare_pid) as bare_clock,
        ):
            bare_load = job_load(client, url, hdrs, worker)
    print(
        f"\nGET /jobs/{{id}} from a sequential client in its own process: idle p99 "
        f"{p99(idle):.1f} ms ({len(idle)} requests); while {LOAD_JOBS} jobs ran at concurrency "
        f"{LOAD_CONCURRENCY} with an SSE follower each ({load}): "
        f"p50 {statistics.median(loaded):.1f} ms, p99 {p99(loaded):.1f} ms over {len(loaded)} "
        f"requests (target p99 ≤ 20 ms); its loop thread ran {clock[0]:.2f} s and waited "
        f"{clock[1]:.2f} s for a CPU"
    )
    print(
        f"the bare app under the same job load ({bare_load}): p50 "
        f"{statistics.median(bare_loaded):.1f} ms, p99 {p99(bare_loaded):.1f} ms over "
        f"{len(bare_loaded)} requests; AVA's p99 ÷ the bare app's: "
        f"{p99(loaded) / p99(bare_loaded):.2f}; its loop thread ran {bare_clock[0]:.2f} s and "
        f"waited {bare_clock[1]:.2f} s for a CPU"
    )


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/api.py needs wrk (`make bench` installs it)")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        db_path = tmp / "bench.db"
        asyncio.run(seed(db_path))
        hdrs = headers(tenant=TENANT, role="tenant-viewer")
        env = {"AVA_MAX_CONCURRENT_JOBS": str(LOAD_CONCURRENCY)}
        with process_server(db_path, **env) as (url, ava_proc):
            wait_healthy(url)
            with httpx.Client(base_url=f"{url}/v1/ava", headers=hdrs, timeout=30) as client:
                routes, fixtures = fixtures_of(client, tmp)
            with bare_server(fixtures) as bare:
                throughput(url, bare[0], routes, hdrs)
                admin = headers(tenant=TENANT, role="tenant-admin")
                under_load((url, ava_proc.pid), bare, admin, routes["GET /jobs/{id}"])


if __name__ == "__main__":
    main()
