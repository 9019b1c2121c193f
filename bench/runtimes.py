"""Runtime image benchmark: build times (cold and incremental), image sizes, cold-run latency.

    .venv/bin/python bench/runtimes.py [--runs 10] [--skip-cold-build]

1. Cold build: every image rebuilt with no layer cache (`build_images(no_cache=True)`, the
   Debian base image is reused; it needs Debian's mirror and PyPI), then the same call again
   with nothing changed: the incremental run `make images` does. `--bootstrap` also times
   bootstrapping Debian (debootstrap + docker import, needs root) into a scratch tag.
2. Cold run: for each runtime, `docker run -i --rm` with the executor's hardening flags and a
   no-op handler's envelope on stdin, timed from process start to exit; median of --runs.
   Baseline, measured in the same run: `docker run --rm <base image> true`; and the same with
   the hardening flags, which is the fairer yardstick (`--network none` skips the network
   set-up, so it is faster than the plain baseline). Ratios are given against both.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import wasmtime

from ava_platform.images import RUNTIMES, ImageReport, build_images, runtime_image_tag

HARDENING = [
    "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,size=64m", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--user", "10001:10001", "--network", "none",
    "--pids-limit", "128",
]  # fmt: skip
BOOTSTRAP_SCRATCH_TAG = "ava/debian-base:bench"
NOOP_SOURCES = {
    "python": "def handler(input, env):\n    return None\n",
    "nodejs": "module.exports = async () => null;\n",
    "deno": "export default () => null;\n",
    "shell": ":\n",
    "wasm": '(module (func (export "_start")))',
}


def noop_envelope(runtime: str) -> bytes:
    source = NOOP_SOURCES[runtime]
    if runtime == "wasm":
        source = base64.b64encode(bytes(wasmtime.wat2wasm(source))).decode()
    job = {"v": 1, "nonce": secrets.token_hex(16), "job_id": "job_bench", "worker_id": "wkr_bench",
           "attempt": 1, "entrypoint": None, "source": source, "bundle_dir": None,
           "input": {}, "env": {"AVA_JOB_ID": "job_bench"}}  # fmt: skip
    return json.dumps(job).encode() + b"\n"


def time_run(argv: list[str], stdin: bytes | None, check_frame: bool) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or (check_frame and b'{"ok":true' not in done.stdout):
        raise RuntimeError(f"{argv[-1]} failed: {done.stdout[-500:]!r} {done.stderr[-500:]!r}")
    return elapsed


def quiet(_line: str) -> None:
    pass  # build output is not what this bench shows


def bootstrap_phase() -> None:
    # Into a scratch tag: re-tagging the real base would make every image stale.
    script = Path(__file__).resolve().parent.parent / "images" / "bootstrap-base.sh"
    started = time.perf_counter()
    subprocess.run(["bash", str(script), BOOTSTRAP_SCRATCH_TAG], capture_output=True, check=True)
    seconds = time.perf_counter() - started
    subprocess.run(
        ["docker", "image", "rm", BOOTSTRAP_SCRATCH_TAG], capture_output=True, check=False
    )
    print(f"debian bootstrap (debootstrap + docker import): {seconds:.1f} s\n")


def build_phase(skip_cold: bool) -> tuple[list[ImageReport] | None, list[ImageReport], float]:
    cold = None if skip_cold else build_images(RUNTIMES, no_cache=True, log=quiet)
    started = time.perf_counter()
    incremental = build_images(RUNTIMES, log=quiet)
    return cold, incremental, time.perf_counter() - started


def print_builds(
    cold: list[ImageReport] | None, incremental: list[ImageReport], incremental_wall_s: float
) -> None:
    print(f"{'image':<28} {'size MB':>8} {'cold build s':>13} {'incremental s':>14}")
    cold_by_tag = {r.tag: r for r in cold or []}
    for r in incremental:
        cold_s = f"{cold_by_tag[r.tag].seconds:.1f}" if r.tag in cold_by_tag else "-"
        print(f"{r.tag:<28} {r.size_bytes / 1e6:>8.1f} {cold_s:>13} {r.seconds:>14.2f}")
    if cold:
        print(f"{'total':<28} {'':>8} {sum(r.seconds for r in cold):>13.1f} "
              f"{sum(r.seconds for r in incremental):>14.2f}")  # fmt: skip
    print(f"incremental build_images() call, wall clock: {incremental_wall_s:.2f} s")


def run_phase(runs: int) -> None:
    base = runtime_image_tag("base")
    configs = [
        ("baseline: run --rm base true", ["docker", "run", "--rm", base, "true"], None),
        ("base true, hardening flags", ["docker", "run", "--rm", *HARDENING, base, "true"], None),
        *(
            (f"{rt} no-op handler", ["docker", "run", "-i", "--rm", *HARDENING,
                                     runtime_image_tag(rt)], rt)
            for rt in RUNTIMES
        ),
    ]  # fmt: skip
    samples: dict[str, list[float]] = {label: [] for label, _, _ in configs}
    # Round-robin, so load from elsewhere on the host hits every config alike. Round 0 is not
    # measured: it only pulls each image's files into the page cache; every run is a new
    # container all the same.
    for round_no in range(runs + 1):
        for label, argv, runtime in configs:
            stdin = noop_envelope(runtime) if runtime else None
            elapsed = time_run(argv, stdin, check_frame=runtime is not None)
            if round_no:
                samples[label].append(elapsed)
    medians = {label: statistics.median(s) * 1000 for label, s in samples.items()}
    baseline, hardened = (medians[label] for label, _, _ in configs[:2])
    print(f"\ncold `docker run` of a no-op, median of {runs} runs")
    print(f"{'':<30} {'ms':>6} {'x baseline':>11} {'x hardened base':>16}")
    for label, ms in medians.items():
        print(f"{label:<30} {ms:>6.0f} {ms / baseline:>11.2f} {ms / hardened:>16.2f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-cold-build", action="store_true", help="only incremental build")
    parser.add_argument("--bootstrap", action="store_true", help="also time the Debian bootstrap")
    args = parser.parse_args(argv)
    if args.bootstrap:
        bootstrap_phase()
    print_builds(*build_phase(args.skip_cold_build))
    run_phase(args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
