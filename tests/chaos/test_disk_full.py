"""The database's disk fills up under a running platform: triggers answer a clear 503 and
queue nothing, the file is not corrupted, and everything works again once space returns.
The disk is a small tmpfs this test mounts (and unmounts) itself."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.support import START_S, count, make_worker
from tests.support import free_port, headers, running_process, server_env

pytestmark = pytest.mark.docker
DISK_MB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs (the chaos tier needs root): {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_answers_503_corrupts_nothing_and_recovers(
    shell_image: str, small_disk: Path, tmp_path: Path
) -> None:
    db = small_disk / "ava.db"
    port = free_port()
    argv = [sys.executable, "-m", "ava_platform", "serve", "--port", str(port), "--db", str(db)]
    env = server_env(db, AVA_WARM_POOL="0")
    with (
        (tmp_path / "server.log").open("ab") as log,  # off the small disk: the log has room
        running_process(argv, env, port, stdout=log, start_timeout_s=START_S) as (url, proc),
        httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=30) as client,
    ):
        worker = make_worker(client)
        first = client.post(f"/workers/{worker}/jobs", json={"input": {}}, params={"wait": 30})
        assert first.json()["status"] == "succeeded", first.text
        filler = _fill(small_disk)
        # SQLite may still find room in pages it already has: keep writing until it cannot
        accepted, refused = [], None
        for _ in range(300):
            before = count(client, "queued") + count(client, "running") + count(client, "succeeded")
            resp = client.post(f"/workers/{worker}/jobs", json={"input": {"pad": "x" * 20_000}})
            if resp.status_code == 503:
                refused = resp
                after = (
                    count(client, "queued") + count(client, "running") + count(client, "succeeded")
                )
                assert after == before, "a refused trigger queued nothing"
                break
            assert resp.status_code == 202, resp.text
            accepted.append(resp.json()["id"])
        assert refused is not None, "the disk never filled"
        error = refused.json()["error"]
        assert error["code"] == "store_full"
        assert "disk is full" in error["message"]
        assert proc.poll() is None
        filler.unlink()
        # space is back: triggers work again, and every accepted job ends
        resp = client.post(f"/workers/{worker}/jobs", json={"input": {}}, params={"wait": 30})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "succeeded"
        deadline = time.monotonic() + 120
        while count(client, "queued") + count(client, "running") and time.monotonic() < deadline:
            time.sleep(0.5)
        for job_id in accepted:
            assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
