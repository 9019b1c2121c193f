"""Runs one example handler in its runtime image, the way the platform runs a job.

    python3 examples/run.py python '{"name": "Ada"}'
    python3 examples/run.py wasm '{"name": "Ada"}'      # compiles main.wat first (needs wasmtime)

Builds the job envelope (runtimes/README.md), starts a hardened container from
`ava/runtime-<runtime>:<version>` (build them with `make images`), writes the envelope to its
stdin, and prints the logs and then the result frame. Exit status: the container's.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENTRYPOINTS = {
    "python": "main.py",
    "nodejs": "index.js",
    "deno": "main.ts",
    "shell": "main.sh",
    "wasm": "main.wasm",
}
HARDENING = [
    "--read-only", "--tmpfs", "/tmp:rw,exec,nosuid,size=64m", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--user", "10001:10001", "--network", "none",
    "--pids-limit", "128",
]  # fmt: skip


def source_of(runtime: str) -> str:
    if runtime != "wasm":
        return (HERE / runtime / ENTRYPOINTS[runtime]).read_text()
    import wasmtime  # only the wasm example needs it, to compile its WAT

    wasm = wasmtime.wat2wasm((HERE / "wasm" / "main.wat").read_text())
    return base64.b64encode(bytes(wasm)).decode()


def envelope(runtime: str, input_value: object, nonce: str) -> bytes:
    job = {
        "v": 1,
        "nonce": nonce,
        "job_id": "job_example",
        "worker_id": "wkr_example",
        "attempt": 1,
        "entrypoint": ENTRYPOINTS[runtime],
        "source": source_of(runtime),
        "bundle_dir": None,
        "input": input_value,
        "env": {"GREETING": "Hello", "AVA_JOB_ID": "job_example", "AVA_WORKER_ID": "wkr_example",
                "AVA_ATTEMPT": "1"},
    }  # fmt: skip
    return json.dumps(job).encode() + b"\n"


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ENTRYPOINTS:
        print(__doc__, file=sys.stderr)
        return 2
    runtime, input_value = argv[0], json.loads(argv[1]) if len(argv) > 1 else {"name": "Ada"}
    sys.path.insert(0, str(HERE.parent))
    from ava_platform.images import runtime_image_tag

    image = runtime_image_tag(runtime)
    nonce = secrets.token_hex(16)
    done = subprocess.run(
        ["docker", "run", "-i", "--rm", *HARDENING, image],
        input=envelope(runtime, input_value, nonce),
        capture_output=True,
        check=False,
    )
    marker = f"AVA-RESULT-{nonce} ".encode()
    logs, _, frame = done.stdout.partition(marker)
    sys.stdout.write(f"--- logs ---\n{logs.decode()}{done.stderr.decode()}")
    sys.stdout.write(f"--- result (exit {done.returncode}) ---\n{frame.decode().strip()}\n")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
