"""A platform process cut off from its PostgreSQL (a network partition) while it runs a job:
it stops the attempt on its own (its container killed before its lease ends), another process
takes the job over once the lease lapsed and runs it to its end, and the cut-off process's
answer, arriving once the network is back, is dropped. The partition is a TCP proxy the test
holds between that one process and the database: paused, it forwards nothing and closes
nothing, as a dropped link does (no error, no answer), then resumes."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.postgres import PostgresServer
from tests.support import build_test_images, headers, process_server, server_log

pytestmark = [pytest.mark.docker]

LEASE_S = 4
GRACE_S = 1.0  # others take a lapsed lease over a quarter of a lease after it ended
# the first attempt runs until it is stopped (long after the link is cut), the next one ends
HANDLER = (
    "import os, time\n"
    "def handler(input, env):\n"
    "    first = str(env.get('AVA_ATTEMPT', os.environ.get('AVA_ATTEMPT'))) == '1'\n"
    "    for i in range(600 if first else 5):\n"
    "        print('tick', i, flush=True)\n"
    "        time.sleep(0.2)\n"
    "    return 'done'\n"
)
ENV = {
    "AVA_LEASE_S": str(LEASE_S),
    "AVA_MAX_CONCURRENT_JOBS": "2",
    "AVA_RETRY_BASE_S": "0.2",
    "AVA_WARM_POOL": "0",  # every attempt in a container labelled with its job
}


class Link:
    """A TCP proxy to the database; `cut()` holds every byte both ways until `mend()`."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._open = threading.Event()
        self._open.set()
        self._socks: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._open.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._open.clear()

    def mend(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._open.set()
        self._server.close()
        for s in self._socks:
            s.close()


@contextmanager
def link_to(postgres: PostgresServer) -> Iterator[Link]:
    link = Link(postgres.host, postgres.port)
    try:
        yield link
    finally:
        link.close()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@127.0.0.1:{port}"))


def _containers(job_id: str) -> list[str]:
    out = subprocess.run(
        ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=ava.job_id={job_id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _wait(what: str, timeout_s: float, check: Any) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s}s")


def _events(log: Path, job_id: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name and event.get("job_id") == job_id:
            found.append(event)
    return found


def _wall(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_a_partitioned_process_stops_its_attempt_and_the_job_ends_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    build_test_images(["python"])
    url = postgres.new_database()
    hdrs = headers()
    with (
        link_to(postgres) as link,
        process_server(tmp_path / "a" / "ava.db", **ENV, AVA_DATABASE_URL=_via(url, link.port)) as (
            a,
            _,
        ),
        httpx.Client(base_url=f"{a}/v1/ava", headers=hdrs, timeout=30) as on_a,
    ):
        made = on_a.post(
            "/workers",
            json={"name": "w", "runtime": "python", "source_code": HANDLER, "network": "none"},
        )
        assert made.status_code == 201, made.text
        job_id = on_a.post(f"/workers/{made.json()['id']}/jobs", json={"input": {}}).json()["id"]
        first = _wait("the first attempt's container", 30, lambda: _containers(job_id))[0]
        # the other process joins once A holds the job: A's lease is live, so B leaves it
        with (
            process_server(tmp_path / "b" / "ava.db", **ENV, AVA_DATABASE_URL=url) as (b, _),
            httpx.Client(base_url=f"{b}/v1/ava", headers=hdrs, timeout=30) as on_b,
        ):
            assert on_b.get(f"/jobs/{job_id}").json()["attempt"] == 1
            link.cut()
            cut_at = time.monotonic()
            gone_s = None
            overlap = []
            deadline = cut_at + 45
            job: dict[str, Any] = {}
            while time.monotonic() < deadline:
                running = _containers(job_id)
                if gone_s is None and first not in running:
                    gone_s, gone_wall = time.monotonic() - cut_at, time.time()
                if first in running and len(running) > 1:
                    overlap.append(running)
                job = on_b.get(f"/jobs/{job_id}").json()
                if job["status"] not in ("queued", "running"):
                    break
                time.sleep(0.1)
            assert gone_s is not None, "the cut-off process's container outlived the partition"
            assert gone_s < LEASE_S + GRACE_S, f"its container outlived its lease: {gone_s:.1f}s"
            assert overlap == [], "the job ran on both processes at once"
            assert job["status"] == "succeeded", job
            # A stopped it itself (on one engine, B's takeover would also kill it), and
            # before B took the job over
            log_a, log_b = (server_log(tmp_path / n / "ava.db") for n in ("a", "b"))
            assert [e["reason"] for e in _events(log_a, job_id, "attempt_abandoned")] == [
                "lease_not_renewed"
            ]
            taken = [e for e in _events(log_b, job_id, "attempt_recovered") if e["taken"]]
            assert len(taken) == 1, taken
            assert gone_wall < _wall(taken[0]["timestamp"]), "taken over before it was stopped"
            link.mend()
            # A's answer for attempt 1, held by the partition, reaches the store and is dropped
            late = _wait(
                "the cut-off process's late answer",
                30,
                lambda: [
                    e for e in _events(log_a, job_id, "attempt_finished") if e["attempt"] == 1
                ],
            )
            assert [e["accepted"] for e in late] == [False]
            job = on_b.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["result"] == "done"
    outcomes = [(t["number"], t["outcome"]) for t in job["attempts"]]
    assert outcomes == [(1, "worker_lost"), (2, "succeeded")], outcomes
    assert _containers(job_id) == []
