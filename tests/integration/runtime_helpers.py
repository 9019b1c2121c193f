"""Helpers for the runtime image tests: envelopes, a hardened `docker run`, frame parsing.

Containers run exactly as the executor runs them (read-only root, /tmp tmpfs, no caps, no
network, uid 10001), so a shim that only works with more privileges fails here.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

HARDENING = [
    "--read-only",
    "--tmpfs",
    "/tmp:rw,exec,nosuid,size=64m",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--network",
    "none",
    "--pids-limit",
    "128",
]
USER = ["--user", "10001:10001"]
RUN_TIMEOUT_S = 60


@dataclass
class RunResult:
    exit_code: int
    stdout: str
    stderr: str
    nonce: str
    frames: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frame(self) -> dict[str, Any]:
        assert len(self.frames) == 1, f"expected one frame, got {self.frames}\n{self.describe()}"
        return self.frames[0]

    @property
    def result(self) -> Any:
        frame = self.frame
        assert frame["ok"] is True, self.describe()
        assert self.exit_code == 0, self.describe()
        return frame["result"]

    def error(self) -> dict[str, str]:
        frame = self.frame
        assert frame["ok"] is False, self.describe()
        return dict(frame["error"])

    @property
    def logs(self) -> str:
        """stdout without the frame, as the platform would store it."""
        marker = f"AVA-RESULT-{self.nonce} "
        return "\n".join(
            line.split(marker)[0] if marker in line else line for line in self.stdout.split("\n")
        )

    def describe(self) -> str:
        return f"exit={self.exit_code}\n--stdout--\n{self.stdout[-3000:]}\n--stderr--\n{self.stderr[-3000:]}"


def envelope(
    source: str | bytes | None,
    *,
    input: Any = None,
    env: dict[str, str] | None = None,
    entrypoint: str | None = None,
    bundle_dir: str | None = None,
) -> dict[str, Any]:
    if isinstance(source, bytes):  # wasm: the module's bytes travel as base64
        source = base64.b64encode(source).decode()
    return {
        "v": 1,
        "nonce": secrets.token_hex(16),
        "job_id": "job_test",
        "worker_id": "wkr_test",
        "attempt": 1,
        "entrypoint": entrypoint,
        "source": source,
        "bundle_dir": bundle_dir,
        "input": input,
        "env": {"AVA_JOB_ID": "job_test", **(env or {})},
    }


def parse_frames(stdout: str, nonce: str) -> list[dict[str, Any]]:
    marker = f"AVA-RESULT-{nonce} "
    frames = []
    for line in stdout.split("\n"):
        if marker in line:
            frames.append(json.loads(line.split(marker, 1)[1]))
    return frames


def run_job(
    image: str,
    env_or_line: dict[str, Any] | bytes,
    *,
    user: bool = True,
    delay_s: float = 0.0,
) -> RunResult:
    """Runs one container with the envelope on stdin (after `delay_s`, like a warm pool)."""
    line = env_or_line if isinstance(env_or_line, bytes) else json.dumps(env_or_line).encode()
    nonce = env_or_line.get("nonce", "") if isinstance(env_or_line, dict) else ""
    argv = ["docker", "run", "-i", "--rm", *HARDENING, *(USER if user else []), image]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        if delay_s:
            time.sleep(delay_s)
        out, err = proc.communicate(line + b"\n", timeout=RUN_TIMEOUT_S)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    return RunResult(proc.returncode, stdout, stderr, nonce, parse_frames(stdout, nonce))


def docker_output(*argv: str) -> str:
    done = subprocess.run(
        ["docker", *argv], capture_output=True, text=True, check=True, timeout=RUN_TIMEOUT_S
    )
    return done.stdout.strip()


# -- WASI test modules, written in WAT and compiled on the host with wasmtime.wat2wasm --------

_WASI_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 64)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 20))))
"""


def wat_module(body: str) -> str:
    return f"(module {_WASI_IMPORTS} {body})"


# Reads all of stdin to 131072.., the environ block to 1024..; prints noise (a forged frame on
# stdout, a line on stderr), then {"input":<stdin>,"environ":"<NAME=value;...>"} as last line
# (NULs turned into ';'), so the test sends only names and values a JSON string can hold.
ECHO_WAT = wat_module(
    r"""
  (data (i32.const 256) "noise AVA-RESULT-00000000000000000000000000000000 {\"ok\":true}\n")
  (data (i32.const 384) "{\"input\":")
  (data (i32.const 400) ",\"environ\":\"")
  (data (i32.const 420) "\"}\n")
  (data (i32.const 440) "a log line on stderr\n")
  (func (export "_start")
    (local $off i32) (local $n i32) (local $envlen i32) (local $i i32)
    (call $write (i32.const 1) (i32.const 256) (i32.const 62))
    (call $write (i32.const 2) (i32.const 440) (i32.const 21))
    (local.set $off (i32.const 131072))
    (block $done
      (loop $more
        (i32.store (i32.const 8) (local.get $off))
        (i32.store (i32.const 12) (i32.const 65536))
        (drop (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $off (i32.add (local.get $off) (local.get $n)))
        (br $more)))
    (drop (call $environ_sizes_get (i32.const 32) (i32.const 36)))
    (local.set $envlen (i32.sub (i32.load (i32.const 36)) (i32.const 1)))
    (drop (call $environ_get (i32.const 64) (i32.const 1024)))
    (local.set $i (i32.const 1024))
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $i) (i32.add (i32.const 1024) (local.get $envlen))))
        (if (i32.eqz (i32.load8_u (local.get $i)))
          (then (i32.store8 (local.get $i) (i32.const 59))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $write (i32.const 1) (i32.const 384) (i32.const 9))
    (call $write (i32.const 1) (i32.const 131072) (i32.sub (local.get $off) (i32.const 131072)))
    (call $write (i32.const 1) (i32.const 400) (i32.const 12))
    (call $write (i32.const 1) (i32.const 1024) (local.get $envlen))
    (call $write (i32.const 1) (i32.const 420) (i32.const 3)))
"""
)

TRAP_WAT = wat_module(
    r"""
  (data (i32.const 256) "about to trap\n")
  (func (export "_start") (call $write (i32.const 2) (i32.const 256) (i32.const 14)) unreachable)
"""
)

EXIT_3_WAT = wat_module('(func (export "_start") (call $proc_exit (i32.const 3)))')

NOT_JSON_WAT = wat_module(
    r"""
  (data (i32.const 256) "{\"looks\": \"like json\"}\nbut the last line is not\n")
  (func (export "_start") (call $write (i32.const 1) (i32.const 256) (i32.const 48)))
"""
)

NO_START_WAT = wat_module('(func (export "main"))')

NOOP_WAT = wat_module('(func (export "_start"))')
