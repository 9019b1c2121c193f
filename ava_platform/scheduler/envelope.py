"""The job envelope the shim reads on stdin (see runtimes/README.md)."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from ava_platform.models import ConfigValue, Worker, WorkerVersion

BUNDLE_DIR = "/opt/ava/bundle"


def env_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_env(
    worker: Worker, secret_values: dict[str, str], job_id: str, attempt: int
) -> dict[str, str]:
    env = {k: env_value(v) for k, v in worker.config.items()}
    env.update(secret_values)
    env.update(AVA_JOB_ID=job_id, AVA_WORKER_ID=worker.id, AVA_ATTEMPT=str(attempt))
    return env


def new_nonce() -> str:
    return secrets.token_hex(16)


def build_envelope(
    *,
    nonce: str,
    job_id: str,
    attempt: int,
    version: WorkerVersion,
    input: Any,
    env: dict[str, str],
) -> bytes:
    inline = version.image is None  # a deployed bundle lives in its own image
    return (
        msgspec.json.encode(
            {
                "v": 1,
                "nonce": nonce,
                "job_id": job_id,
                "worker_id": version.worker_id,
                "attempt": attempt,
                "entrypoint": version.entrypoint,
                "source": version.source_code if inline else None,
                "bundle_dir": None if inline else BUNDLE_DIR,
                "input": input,
                "env": env,
            }
        )
        + b"\n"
    )
