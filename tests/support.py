"""Test helpers: a real server on a real port (in a thread, or as a process), and header sets."""

from __future__ import annotations

import base64
import http.server
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

SECRET = "test-internal-secret-0123456789"
SECRET_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(db_path: Path, **extra: str) -> dict[str, str]:
    keep = {"AVA_IMAGE_NAMESPACE"}  # the tests' own image tags (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVA_") or k in keep}
    env.update(AVA_INTERNAL_SECRET=SECRET, AVA_SECRET_KEY=SECRET_KEY, AVA_DB_PATH=str(db_path))
    env.update(extra)
    return env


def headers(
    tenant: str | None = None, role: str = "tenant-admin", user: str = "usr_test"
) -> dict[str, str]:
    return {
        "x-internal-secret": SECRET,
        "x-tenant-id": tenant or f"ten_{uuid.uuid4().hex[:12]}",
        "x-user-id": user,
        "x-platform-role": role,
    }


def wait_healthy(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server at {url} did not become healthy")


@contextmanager
def app_server(app: Any) -> Iterator[str]:
    """Any ASGI app on a real socket, in a thread of this process."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def thread_server(db_path: Path, **env: str) -> Iterator[str]:
    """The real app on a real socket, in this process (fast; one per test is fine)."""
    from ava_platform.api.app import create_app
    from ava_platform.config import load_settings
    from ava_platform.wiring import Platform

    settings = load_settings(server_env(db_path, **env))
    app = create_app(Platform(settings), internal_secret=settings.internal_secret)
    with app_server(app) as url:
        yield url
    assert_documents_current(db_path)


def assert_documents_current(db_path: Path) -> None:
    """Every job and worker document a SQLite store keeps is what its row builds now
    (store/documents.py): a write its triggers missed fails the test that made it. Called
    where the tests' servers and stores end; a store that is not a SQLite file passes."""
    from ava_platform.store.database import SQLITE
    from ava_platform.store.json_rows import job_object, worker_object

    if not db_path.is_file():
        return
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        if "doc" not in columns:
            return  # a store from before migration 13, as a test of an upgrade leaves one
        for table, built in (
            ("jobs", job_object(SQLITE, "t")),
            ("workers", worker_object(SQLITE, "t")),
        ):
            stale = conn.execute(
                f"SELECT t.id, t.doc, {built} FROM {table} t WHERE t.doc IS NOT {built} LIMIT 3"
            ).fetchall()
            assert not stale, f"{table} documents behind their rows (id, kept, built): {stale}"


@contextmanager
def running_process(
    argv: list[str],
    env: dict[str, str],
    port: int,
    *,
    stdout: Any = subprocess.PIPE,
    stderr: int = subprocess.STDOUT,
    start_timeout_s: float = 20.0,
) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """A server process; stopped (terminate, then kill) when the block ends. A pipe is only
    for short runs whose output the test reads: nobody drains it meanwhile, and a full pipe
    blocks the server's log writes."""
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=stdout, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, start_timeout_s)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_log(db_path: Path) -> Path:
    """Where `process_server` writes the server's stdout and stderr."""
    return db_path.with_name(db_path.name + ".server.log")


@contextmanager
def process_server(
    db_path: Path, start_timeout_s: float = 20.0, **env: str
) -> Iterator[tuple[str, subprocess.Popen[Any]]]:
    """`ava serve` as a real process, for restart and signal tests; its output is appended
    to `server_log(db_path)`."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "ava_platform",
        "serve",
        "--port",
        str(port),
        "--db",
        str(db_path),
    ]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        server_log(db_path).open("ab") as log_file,
        running_process(
            argv, server_env(db_path, **env), port, stdout=log_file, start_timeout_s=start_timeout_s
        ) as served,
    ):
        yield served
    assert_documents_current(db_path)


# -- images: tests build and run under their own tags -------------------------------------------

# AVA_TEST_IMAGE_NAMESPACE: branches tested at once on one engine keep their images apart.
TEST_IMAGE_NAMESPACE = os.environ.get("AVA_TEST_IMAGE_NAMESPACE") or "ava-test"
TEST_PLATFORM_IMAGE = f"{TEST_IMAGE_NAMESPACE}/platform:0.1.0"


def user_image_refs() -> list[str]:
    """The images a user's `make up` / `docker compose up` runs on (namespace `ava`)."""
    from ava_platform import __version__
    from ava_platform.executor.runtime_images import RUNTIMES

    names = [f"runtime-{name}" for name in ("base", *RUNTIMES)] + ["platform"]
    return [f"ava/{name}:{__version__}" for name in names]


def image_ids(refs: list[str]) -> dict[str, str | None]:
    """The image id each ref points at (None: no such image)."""
    ids: dict[str, str | None] = {}
    for ref in refs:
        out = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        ids[ref] = out.stdout.strip() if out.returncode == 0 else None
    return ids


@contextmanager
def tests_namespace_env() -> Iterator[str]:
    """`AVA_IMAGE_NAMESPACE` set to the tests' namespace for the block (then restored)."""
    before = os.environ.get("AVA_IMAGE_NAMESPACE")
    os.environ["AVA_IMAGE_NAMESPACE"] = TEST_IMAGE_NAMESPACE
    try:
        yield TEST_IMAGE_NAMESPACE
    finally:
        if before is None:
            os.environ.pop("AVA_IMAGE_NAMESPACE", None)
        else:
            os.environ["AVA_IMAGE_NAMESPACE"] = before


def build_test_images(runtimes: list[str] | None = None) -> list[str]:
    """The runtime images (all when None) under the tests' namespace (`ava-test/runtime-*`),
    through the same incremental code path as `make images`; the user's `ava/...` images are
    not touched."""
    from ava_platform.executor.runtime_images import build_images

    with tests_namespace_env():
        return [r.tag for r in build_images(runtimes, log=lambda _line: None)]


# -- a webhook receiver on loopback -------------------------------------------------------------


class WebhookReceiver(http.server.BaseHTTPRequestHandler):
    """Records every POST (headers, body) and answers the next status of `answers`, then 200."""

    answers: list[int]
    seen: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append((dict(self.headers.items()), body))
        code = self.answers.pop(0) if self.answers else 200
        self.send_response(code)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def webhook_receiver(answers: list[int]) -> Iterator[tuple[str, type[WebhookReceiver]]]:
    """(its URL, its handler class, whose `seen` fills as deliveries arrive)."""
    handler = type("Receiver", (WebhookReceiver,), {"answers": list(answers), "seen": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", handler
    finally:
        httpd.shutdown()
