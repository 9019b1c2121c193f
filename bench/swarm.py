"""Cold start on the swarm executor against the local executor: sequential no-op python jobs
(POST ?wait → result in hand), the warm pool off on both, measured interleaved in the same run
on a single-node swarm of this engine (made for the run and left afterwards if the engine was
in none). For `network: none` (a local container with loopback only; a swarm task on the
platform's internal overlay network) and for `egress` (the node's bridge on both).

Run: .venv/bin/python bench/swarm.py  (or `make bench`); it says why and exits 0 when no swarm
can be made here.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ava_platform.images import build_images
from bench.jobs import job, pct, platform
from tests.integration.swarm_cluster import swarm_manager

ROUNDS = 15
NOOP = "def handler(input, env):\n    return {'ok': True}\n"


def worker(client: httpx.Client, network: str) -> str:
    body = {"name": f"noop-{network}", "runtime": "python", "source_code": NOOP, "network": network}
    return str(client.post("/workers", json=body).json()["id"])


def main() -> None:
    build_images(["python"], log=lambda _l: None)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(swarm_manager())
        except Exception as exc:
            print(f"bench/swarm.py skipped: no swarm can be made on this engine ({exc})")
            return
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        local = stack.enter_context(platform(tmp, "local", AVA_WARM_POOL="0"))
        # egress tasks on the node's own bridge, as an operator who firewalled it would say
        swarm_env = {"AVA_EXECUTOR": "swarm", "AVA_SWARM_EGRESS_NETWORK": "bridge"}
        swarm = stack.enter_context(platform(tmp, "swarm", AVA_WARM_POOL="0", **swarm_env))
        print(f"{'cold start, no-op python':<36}{'local':>9}{'swarm':>9}{'ratio':>8}")
        for network in ("none", "egress"):
            measure(local, swarm, network)
        print("ratio: swarm time / local time (single-node swarm; a task's placement, secret")
        print("and log stream go through the manager's raft store and dispatcher)")


def measure(local: httpx.Client, swarm: httpx.Client, network: str) -> None:
    lw, sw = worker(local, network), worker(swarm, network)
    job(local, lw), job(swarm, sw)  # first runs: images in the page cache, networks made
    times: dict[str, list[float]] = {"local": [], "swarm": []}
    for _ in range(ROUNDS):  # interleaved: drift in the machine hits both alike
        times["local"].append(job(local, lw))
        times["swarm"].append(job(swarm, sw))
    for q, name in ((0.5, "p50"), (0.9, "p90")):
        lo, sw_s = pct(times["local"], q), pct(times["swarm"], q)
        print(f"{f'network {network} {name} (s)':<36}{lo:>9.3f}{sw_s:>9.3f}{sw_s / lo:>8.2f}")
    mean = statistics.mean(times["swarm"]) / statistics.mean(times["local"])
    print(f"{f'network {network} mean ratio':<36}{'':>18}{mean:>8.2f}")


if __name__ == "__main__":
    main()
