"""The shim protocol, platform side: the envelope a container reads on stdin and the result
frame it writes back. The shims' side is in runtimes/ (runtimes/README.md is the contract).

Envelope: one JSON line on stdin,
    {"v": 1, "nonce", "job_id", "worker_id", "attempt", "entrypoint",
     "source" (inline code, or null), "bundle_dir" (a deployed bundle, or null), "input", "env"}
Frame: one line on stdout, after all of the handler's own output,
    AVA-RESULT-<nonce> {"ok": true, "result": <json>}
    AVA-RESULT-<nonce> {"ok": false, "error": {"type": "...", "message": "..."}}
written just after `AVA-END-<nonce>` on stderr: each pipe keeps its order, so once both are
read the attempt's whole output is in, before the engine reports the exit.
The nonce is fresh per attempt and never shown to user code, so nothing a handler prints can
pass for its result. Everything else on stdout and stderr is log lines.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from ava_platform.models import ConfigValue, RunSettings

ENVELOPE_VERSION = 1
BUNDLE_DIR = "/opt/ava/bundle"
FRAME_PREFIX = "AVA-RESULT-"
END_PREFIX = "AVA-END-"
MAX_RESULT_BYTES = 1024 * 1024
MAX_FRAME_BYTES = MAX_RESULT_BYTES + 64  # the result plus the frame's own JSON around it


class BadFrame(ValueError):
    """The frame line is not the JSON object the protocol says."""


def new_nonce() -> str:
    return secrets.token_hex(16)


def frame_marker(nonce: str) -> bytes:
    return f"{FRAME_PREFIX}{nonce} ".encode()


def end_marker(nonce: str) -> bytes:
    return f"{END_PREFIX}{nonce}".encode()


def encode_frame(nonce: str, body: dict[str, Any]) -> bytes:
    """A whole frame line, as a shim writes it (the fake executor and tests use this)."""
    return frame_marker(nonce) + msgspec.json.encode(body) + b"\n"


def decode_frame(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise BadFrame(str(exc)) from None


def env_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_env(
    run: RunSettings, secret_values: dict[str, str], *, worker_id: str, job_id: str, attempt: int
) -> dict[str, str]:
    env = {k: env_value(v) for k, v in run.config.items()}
    env.update(secret_values)
    env.update(AVA_JOB_ID=job_id, AVA_WORKER_ID=worker_id, AVA_ATTEMPT=str(attempt))
    return env


def build_envelope(
    *,
    nonce: str,
    job_id: str,
    worker_id: str,
    attempt: int,
    entrypoint: str,
    source: str | None,
    input_json: bytes,
    env: dict[str, str],
) -> bytes:
    """`source` None means a deployed bundle, which lives in the job's own image. The input
    goes in as the bytes that were stored, never decoded on the way."""
    inline = source is not None
    return (
        msgspec.json.encode(
            {
                "v": ENVELOPE_VERSION,
                "nonce": nonce,
                "job_id": job_id,
                "worker_id": worker_id,
                "attempt": attempt,
                "entrypoint": entrypoint,
                "source": source,
                "bundle_dir": None if inline else BUNDLE_DIR,
                "input": msgspec.Raw(input_json),
                "env": env,
            }
        )
        + b"\n"
    )


def read_envelope(line: bytes) -> dict[str, Any]:
    """The envelope as a shim sees it (for the fake executor and tests)."""
    envelope = msgspec.json.decode(line)
    if not isinstance(envelope, dict) or envelope.get("v") != ENVELOPE_VERSION:
        raise BadFrame("not an envelope of this protocol version")
    return envelope
