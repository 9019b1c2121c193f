"""`ava serve` as a real process: it answers HTTP, keeps data across restarts, stops cleanly on
SIGTERM, and refuses to start without valid secrets."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    ROOT,
    SECRET,
    SECRET_KEY,
    free_port,
    process_server,
    running_process,
    server_env,
)

AVA = Path(sys.executable).with_name("ava")
# the seed's curl example, byte for byte in meaning
SEED_HEADERS = {
    "x-internal-secret": SECRET,
    "x-tenant-id": "ten_01hxyz",
    "x-user-id": "usr_01hxyz",
    "x-platform-role": "tenant-system-admin",
    "Content-Type": "application/json",
}
SEED_BODY = b"""{
"name": "Incident enrichment pipeline",
"runtime": "python",
"description": "Pulls threat intel for new critical incidents and posts enriched summary to Slack",
"timeout_seconds": 120,
"max_retries": 1,
"config": {
"SLACK_CHANNEL": "#security-ops",
"MIN_SEVERITY": "high"
},
"secrets": ["SLACK_BOT_TOKEN", "VIRUSTOTAL_API_KEY"],
"source_code": "async def handler(input, env):\\n # ... enrichment logic"
}"""


def stop(proc: subprocess.Popen[Any], db_path: Path, timeout_s: float = 10.0) -> int:
    """SIGTERM, then proof of a clean stop: exit status 0 in time, and the store was closed
    (closing the last connection checkpoints the WAL and removes its file)."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=timeout_s)
    assert code == 0
    assert not Path(f"{db_path}-wal").exists()
    return code


@contextmanager
def ava_serve(db_path: Path) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """The installed `ava` console script, with every option spelled out."""
    port = free_port()
    argv = [str(AVA), "serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(db_path)]
    env = server_env(db_path.parent / "not-this.db")
    with running_process(argv, env, port, stderr=subprocess.PIPE) as served:
        yield served


def test_python_m_serve_runs_the_seed_example_and_keeps_it_across_restarts(
    db_path: Path,
) -> None:
    with process_server(db_path) as (url, proc):
        assert httpx.get(f"{url}/healthz").status_code == 200
        created = httpx.post(f"{url}/v1/ava/workers", content=SEED_BODY, headers=SEED_HEADERS)
        assert created.status_code == 201, created.text
        worker = created.json()
        assert worker["name"] == "Incident enrichment pipeline"
        assert worker["tenant_id"] == "ten_01hxyz"
        assert worker["config"] == {"SLACK_CHANNEL": "#security-ops", "MIN_SEVERITY": "high"}
        assert worker["source_code"] == "async def handler(input, env):\n # ... enrichment logic"
        stop(proc, db_path)
    with process_server(db_path) as (url, proc):
        again = httpx.get(f"{url}/v1/ava/workers/{worker['id']}", headers=SEED_HEADERS)
        assert again.json() == worker
        stop(proc, db_path)


def test_ava_console_script_serves_and_stops_on_sigterm(db_path: Path) -> None:
    with ava_serve(db_path) as (url, proc):
        response = httpx.get(f"{url}/v1/ava/workers", headers=SEED_HEADERS)
        assert response.json()["meta"]["total"] == 0
        assert httpx.get(f"{url}/v1/ava/workers").status_code == 401
        stop(proc, db_path)
        _, stderr = proc.communicate(timeout=5)
    assert b"Traceback" not in stderr
    assert db_path.exists()  # --db wins over AVA_DB_PATH
    assert not (db_path.parent / "not-this.db").exists()


VALID_KEY = SECRET_KEY
REFUSALS: list[tuple[str, dict[str, str | None], str]] = [
    ("secret missing", {"AVA_INTERNAL_SECRET": None}, "AVA_INTERNAL_SECRET"),
    ("secret empty", {"AVA_INTERNAL_SECRET": ""}, "AVA_INTERNAL_SECRET"),
    ("secret short", {"AVA_INTERNAL_SECRET": "short"}, "AVA_INTERNAL_SECRET"),
    ("key missing", {"AVA_SECRET_KEY": None}, "AVA_SECRET_KEY"),
    ("key empty", {"AVA_SECRET_KEY": ""}, "AVA_SECRET_KEY"),
    ("key not base64", {"AVA_SECRET_KEY": "this is not base64!"}, "AVA_SECRET_KEY"),
    ("key with junk", {"AVA_SECRET_KEY": VALID_KEY[:8] + "!*" + VALID_KEY[8:]}, "AVA_SECRET_KEY"),
    (
        "key 16 bytes",
        {"AVA_SECRET_KEY": base64.urlsafe_b64encode(b"k" * 16).decode()},
        "AVA_SECRET_KEY",
    ),
    (
        "key 33 bytes",
        {"AVA_SECRET_KEY": base64.urlsafe_b64encode(b"k" * 33).decode()},
        "AVA_SECRET_KEY",
    ),
]


@pytest.mark.parametrize(
    ("env_change", "variable"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refuses_to_start_with_a_one_line_reason(
    db_path: Path, env_change: dict[str, str | None], variable: str
) -> None:
    env = server_env(db_path)
    for name, value in env_change.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    result = subprocess.run(
        [str(AVA), "serve", "--port", str(free_port()), "--db", str(db_path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert variable in lines[0]
    assert SECRET not in lines[0]
    assert not db_path.exists()  # refused before touching the store


def test_valid_key_without_padding_is_accepted(db_path: Path) -> None:
    with process_server(db_path, AVA_SECRET_KEY=VALID_KEY.rstrip("=")) as (url, proc):
        assert httpx.get(f"{url}/healthz").status_code == 200
        stop(proc, db_path)


def test_images_build_refuses_an_unknown_runtime_in_one_line() -> None:
    run = subprocess.run(
        [str(AVA), "images", "build", "--runtime", "cobol"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "ava images build: unknown runtime 'cobol'; expected one of python, nodejs, deno, shell, wasm"
    ]
