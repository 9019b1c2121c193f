"""Latency of the Workers API over 10,000 workers in one tenant.

Seeds a fresh SQLite file through the worker service (10,000 workers in the measured tenant,
5,000 more spread over other tenants), starts `ava serve` as a real process on it, and measures
with one keep-alive httpx client: GET /healthz (the baseline: no auth, no store), GET a worker by
id, and filtered lists. Run from the repo root: `.venv/bin/python bench/api_search.py`.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from ava_platform.clock import SystemClock  # noqa: E402
from ava_platform.models import Role, Runtime, WorkerCreate, WorkerPatch  # noqa: E402
from ava_platform.service.auth import Principal  # noqa: E402
from ava_platform.service.workers import WorkerService  # noqa: E402
from ava_platform.store.db import Database  # noqa: E402
from ava_platform.store.workers import VersionStore, WorkerStore  # noqa: E402
from tests.support import headers, process_server  # noqa: E402

WORKERS = 10_000
NOISE_TENANTS, NOISE_PER_TENANT = 5, 1_000
REQUESTS, WARMUP = 1_000, 100
TENANT = "ten_bench"
WORDS = [
    "incident",
    "enrich",
    "slack",
    "triage",
    "report",
    "sync",
    "scan",
    "notify",
    "audit",
    "etl",
]
KINDS = ["pipeline", "agent", "bot", "job", "worker", "hook", "task", "flow", "relay", "probe"]


def name_of(i: int) -> str:
    return f"{WORDS[i % 10].title()} {KINDS[(i // 10) % 10]} {i}"


async def seed(db_path: Path) -> list[str]:
    """Creates the workers through the service (validation, versions, FTS triggers and all)."""
    db = Database(db_path)
    await db.open()
    service = WorkerService(WorkerStore(db), VersionStore(db), SystemClock())
    runtimes = [r for r in Runtime if r is not Runtime.WASM]
    ids: list[str] = []
    try:
        tenants = [(TENANT, WORKERS)] + [
            (f"ten_noise{t}", NOISE_PER_TENANT) for t in range(NOISE_TENANTS)
        ]
        for tenant, count in tenants:
            who = Principal(tenant_id=tenant, user_id="usr_bench", role=Role.ADMIN)
            for i in range(count):
                data = WorkerCreate(name=name_of(i), runtime=runtimes[i % len(runtimes)])
                worker = await service.create(who, data)
                if i % 10 == 9:  # some deprecated and paused rows for the filters to skip
                    await service.deprecate(who, worker.id)
                elif i % 10 == 8:
                    await service.update(who, worker.id, WorkerPatch(name=worker.name + " v2"))
                if tenant == TENANT:
                    ids.append(worker.id)
    finally:
        await db.close()
    return ids


def expected_total(q: str) -> int:
    """Active or paused python workers of the measured tenant whose name contains q."""
    runtimes = [r for r in Runtime if r is not Runtime.WASM]
    return sum(
        1
        for i in range(WORKERS)
        if i % 10 != 9
        and runtimes[i % len(runtimes)] is Runtime.PYTHON
        and q in (name_of(i) + (" v2" if i % 10 == 8 else "")).lower()
    )


def measure(client: httpx.Client, request: Callable[[int], httpx.Response]) -> list[float]:
    for i in range(WARMUP):
        request(i).raise_for_status()
    times_ms: list[float] = []
    for i in range(REQUESTS):
        start = time.perf_counter()
        response = request(i)
        times_ms.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return times_ms


def percentile(times_ms: list[float], pct: int) -> float:
    return statistics.quantiles(times_ms, n=100, method="inclusive")[pct - 1]


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        ids = asyncio.run(seed(db_path))
        seeded_s = time.perf_counter() - started
        rng = random.Random(7)
        sample = [rng.choice(ids) for _ in range(REQUESTS + WARMUP)]
        with process_server(db_path) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
            tenant = headers(tenant=TENANT, role="tenant-viewer")
            api = f"{url}/v1/ava/workers"
            trigram: dict[str, str | int] = {
                "filter[runtime]": "python",
                "q": "enrich",
                "per_page": 20,
            }
            short: dict[str, str | int] = {"filter[runtime]": "python", "q": "ic", "per_page": 20}
            for params in (trigram, short):
                got = client.get(api, params=params, headers=tenant).json()["meta"]["total"]
                assert got == expected_total(str(params["q"])), (params, got)
            cases: list[tuple[str, Callable[[int], httpx.Response]]] = [
                ("GET /healthz (baseline)", lambda i: client.get("/healthz")),
                ("GET /workers/{id}", lambda i: client.get(f"{api}/{sample[i]}", headers=tenant)),
                (
                    "list runtime=python q=enrich (trigram)",
                    lambda i: client.get(api, params=trigram, headers=tenant),
                ),
                (
                    "list runtime=python q=ic (LIKE, <3 chars)",
                    lambda i: client.get(api, params=short, headers=tenant),
                ),
                (
                    "list runtime=python q=enrich page 20",
                    lambda i: client.get(api, params={**trigram, "page": 20}, headers=tenant),
                ),
            ]
            results = [(label, measure(client, request)) for label, request in cases]
    report(results, seeded_s, time.perf_counter() - started)


def report(results: list[tuple[str, list[float]]], seeded_s: float, total_s: float) -> None:
    base = percentile(results[0][1], 50)
    print(
        f"{WORKERS} workers in the measured tenant, {NOISE_TENANTS * NOISE_PER_TENANT} in others;"
        f" seeded in {seeded_s:.1f}s; {REQUESTS} requests per row after {WARMUP} warm-up\n"
    )
    print(f"{'request':<44}{'p50 ms':>9}{'p95 ms':>9}{'p50 / baseline':>16}")
    for label, times_ms in results:
        p50, p95 = percentile(times_ms, 50), percentile(times_ms, 95)
        print(f"{label:<44}{p50:>9.2f}{p95:>9.2f}{p50 / base:>15.1f}x")
    print(
        f"\nlist totals checked: q=enrich {expected_total('enrich')}, q=ic {expected_total('ic')}"
    )
    print(f"\nwhole run: {total_s:.1f}s")


if __name__ == "__main__":
    main()
