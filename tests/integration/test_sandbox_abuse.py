"""Resource abuse ends cleanly (README: Security model): a fork bomb, memory and tmpfs
exhaustion, 100 MiB of output, a handler that closes stdout early (its answer still gets
out) and one that ignores SIGTERM past its timeout run at once on a server process of their
own, with a million tiny log lines alongside. Each ends with its own outcome; /healthz is
sampled all along by a thread of this test (another process than the server's); nothing is
left running. Replaces the separate fork-bomb, memory-hog and output-flood tests of
test_jobs.py: one server, all cases at once, each asserted on its own."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration import sources
from tests.integration.conftest import Ava, ava_containers
from tests.support import headers, process_server

pytestmark = pytest.mark.slow

PY_FILL_TMP = (
    "def handler(input, env):\n"
    "    with open('/tmp/fill', 'wb') as f:\n"
    "        while True:\n"
    "            f.write(b'x' * (1024 * 1024))\n"
    "            f.flush()\n"
)
PY_CLOSE_STDOUT = (
    "import os, sys\n"
    "def handler(input, env):\n"
    "    sys.stdout.flush()\n"
    "    os.close(1)\n"
    "    return 'answered anyway'\n"
)
PY_IGNORE_SIGTERM = (
    "import signal, time\n"
    "def handler(input, env):\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "    print('ignoring SIGTERM', flush=True)\n"
    "    time.sleep(120)\n"
)
PY_TINY_LINES = (
    "import sys\n"
    "def handler(input, env):\n"
    "    sys.stdout.write('.\\n' * 1_000_000)\n"
    "    sys.stdout.flush()\n"
    "    return {'lines': 1_000_000}\n"
)
# name -> (source, worker fields, input)
CASES: dict[str, tuple[str, dict[str, object], dict[str, object]]] = {
    "fork_bomb": (sources.PY_FORK_BOMB, {"timeout_seconds": 8}, {}),
    "memory": (sources.PY_MEMORY_HOG, {"memory_mb": 64, "timeout_seconds": 30}, {}),
    "tmpfs": (PY_FILL_TMP, {"memory_mb": 256, "timeout_seconds": 30}, {}),
    "output_100_mib": (sources.PY_FLOOD, {"timeout_seconds": 120}, {"mib": 100}),
    "closed_stdout": (PY_CLOSE_STDOUT, {"timeout_seconds": 30}, {}),
    "ignores_sigterm": (PY_IGNORE_SIGTERM, {"timeout_seconds": 3}, {}),
    "million_lines": (PY_TINY_LINES, {"timeout_seconds": 120}, {}),
}
# the bound is 100 ms for every sample. Output is read and stored in bounded slices,
# so no case holds the loop for long (a million lines used to stall it ~5 s); but on a shared
# 2-core machine running other suites a sample can still wait on the CPU itself (measured:
# p95 42-65 ms, slowest 300-560 ms; README: Security model), so the test holds the 95th
# percentile to the bound, catches any stall of a second, and prints the slowest answer
HEALTH_P95_S = 0.1
HEALTH_MAX_S = 1.0


@pytest.fixture
def abuse_server(tmp_path: Path, runtime_images: list[str]) -> Iterator[str]:
    env = {"AVA_WARM_POOL": "0", "AVA_MAX_CONCURRENT_JOBS": str(len(CASES))}
    with process_server(tmp_path / "ava.db", **env) as (url, _process):
        yield url


class HealthSampler(threading.Thread):
    """GET /healthz every 50 ms; keeps the slowest answers."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(f"{self.url}/healthz").status_code
                except httpx.HTTPError:
                    status = 0  # no answer within 5 s
                self.samples.append((time.perf_counter() - started, status))
                self.stop.wait(0.05)


def test_abusive_jobs_end_cleanly_while_the_platform_stays_responsive(abuse_server: str) -> None:
    sampler = HealthSampler(abuse_server)
    with httpx.Client(base_url=f"{abuse_server}/v1/ava", headers=headers(), timeout=60) as c:
        ava = Ava(c)
        sampler.start()
        try:
            job_ids = {}
            for name, (source, fields, input) in CASES.items():
                worker = ava.worker("python", source, network="none", **fields)
                job_ids[name] = ava.trigger(worker["id"], input).json()["id"]
            jobs = {name: ava.wait_for(job_id, timeout_s=180) for name, job_id in job_ids.items()}
        finally:
            sampler.stop.set()
            sampler.join(timeout=10)
        logs = {name: ava.logs(jobs[name]["id"]) for name in ("output_100_mib", "million_lines")}

    def error_type(name: str) -> str:
        return str((jobs[name]["error"] or {}).get("type"))

    assert jobs["fork_bomb"]["status"] == "timed_out" and error_type("fork_bomb") == "timeout"
    assert error_type("memory") == "out_of_memory", jobs["memory"]
    assert jobs["tmpfs"]["status"] == "failed", jobs["tmpfs"]
    assert "No space left on device" in jobs["tmpfs"]["error"]["message"]
    assert jobs["output_100_mib"]["status"] == "succeeded", jobs["output_100_mib"]
    assert jobs["output_100_mib"]["result"] == {"printed_mib": 100}
    assert len(logs["output_100_mib"].encode()) <= 10 * 1024 * 1024 + 1024
    assert "log truncated" in logs["output_100_mib"]
    # the shim writes its frame on a copy of the original stdout: the answer still gets out
    assert jobs["closed_stdout"]["status"] == "succeeded", jobs["closed_stdout"]
    assert jobs["closed_stdout"]["result"] == "answered anyway"
    assert jobs["ignores_sigterm"]["status"] == "timed_out"
    assert error_type("ignores_sigterm") == "timeout"
    assert jobs["million_lines"]["status"] == "succeeded", jobs["million_lines"]
    assert jobs["million_lines"]["result"] == {"lines": 1_000_000}
    assert logs["million_lines"].count(".\n") == 1_000_000

    assert len(sampler.samples) > 20
    times = sorted(s for s, _ in sampler.samples)
    assert all(status == 200 for _, status in sampler.samples)
    p95 = times[int(len(times) * 0.95)]
    print(f"/healthz: {len(times)} samples, p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")
    assert p95 < HEALTH_P95_S, f"/healthz p95 {p95 * 1000:.0f} ms"
    assert times[-1] < HEALTH_MAX_S, f"/healthz took {times[-1] * 1000:.0f} ms"

    deadline = time.monotonic() + 15
    while _left(job_ids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _left(job_ids.values())
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _left(job_ids: object) -> list[str]:
    wanted = set(job_ids)  # type: ignore[call-overload]
    out = []
    for cid in ava_containers():
        label = subprocess.run(
            ["docker", "inspect", "-f", '{{index .Config.Labels "ava.job_id"}}', cid],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if label in wanted:
            out.append(cid)
    return out
