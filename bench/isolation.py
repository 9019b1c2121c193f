"""gVisor's cold start against runc: a no-op python job through the real executor (the
platform's own container spec, prewarmed pool off), from the create call to the container's
exit; median and p90 of --runs for each isolation, egress and none networks.

    .venv/bin/python bench/isolation.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ava_platform.config import PoolSettings
from ava_platform.executor.base import RunSpec
from ava_platform.executor.docker import DockerExecutor
from ava_platform.images import runtime_image_tag
from runtimes import noop_envelope


def spec(isolation: str, network: bool, n: int) -> RunSpec:
    return RunSpec(
        job_id=f"job_bench_{isolation}_{n}", tenant_id="ten_bench", worker_id="wkr_bench",
        attempt=1, image=runtime_image_tag("python"), envelope=noop_envelope("python"),
        memory_mb=256, cpus=1.0, network_enabled=network, timeout_s=60.0, isolation=isolation,
    )  # fmt: skip


async def one(executor: DockerExecutor, run: RunSpec) -> float:
    out: list[bytes] = []
    started = time.perf_counter()
    result = await executor.run(run, lambda _s, data: out.append(data), asyncio.Event())
    elapsed = time.perf_counter() - started
    if result.exit_code != 0 or b'"ok":true' not in b"".join(out).replace(b" ", b""):
        raise RuntimeError(f"{run.isolation} run failed: {result} {b''.join(out)[-300:]!r}")
    return elapsed


async def main(runs: int) -> None:
    executor = DockerExecutor(platform_id="bench-isolation", pool=PoolSettings(enabled=False))
    try:
        print(f"cold start, no-op python handler, {runs} runs each (noisy on a shared machine)")
        for network in (False, True):
            medians = {}
            for isolation in ("container", "gvisor"):
                await one(executor, spec(isolation, network, -1))  # page the runtime in
                times = sorted(
                    [await one(executor, spec(isolation, network, n)) for n in range(runs)]
                )
                p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
                medians[isolation] = statistics.median(times)
                net = "egress" if network else "none"
                print(f"  {isolation:9} network={net:6} median {medians[isolation] * 1000:6.0f} ms"
                      f"  p90 {p90 * 1000:6.0f} ms")  # fmt: skip
            ratio = medians["gvisor"] / medians["container"]
            print(f"  gvisor / runc: {ratio:.2f}x")
    finally:
        await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    asyncio.run(main(parser.parse_args().runs))
