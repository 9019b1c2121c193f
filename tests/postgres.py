"""A real PostgreSQL for the tests: the image is built here from images/postgres (FROM the
offline runtime base, Debian's own `postgresql` package), cached by a tag naming its sources'
digest, and run with testcontainers. Each test gets a fresh database cloned from a migrated
template, so tests never see each other's rows and pay no migration each."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from tests.support import ROOT, TEST_IMAGE_NAMESPACE, free_port

# no registry is reachable: testcontainers' reaper image cannot be pulled (read at its import)
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
SOURCES = ROOT / "images" / "postgres"
USER = PASSWORD = "ava"
TEMPLATE = "ava_template"


def image_tag() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCES.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"{TEST_IMAGE_NAMESPACE}/postgres:15-{digest.hexdigest()[:12]}"


def ensure_image() -> str:
    """Builds the image unless this exact one exists (a fresh machine builds it once)."""
    tag = image_tag()
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    if found.returncode == 0:
        return tag
    from ava_platform.executor.runtime_images import ensure_base_image

    base = ensure_base_image(log=lambda _line: None).tag
    subprocess.run(
        ["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={base}", str(SOURCES)],
        check=True,
        capture_output=True,
    )
    return tag


class PostgresServer:
    """One running server: `new_database()` returns the URL of a fresh, migrated database."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{PASSWORD}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}'))
        return self.url(name)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def prepare_template(self) -> None:
        from ava_platform.store.postgres.db import PostgresDatabase

        async def migrate() -> None:
            await self._admin(f"CREATE DATABASE {TEMPLATE}")
            db = PostgresDatabase(self.url(TEMPLATE), pool_size=1)
            await db.open()
            await db.close()

        asyncio.run(migrate())


def _wait_ready(server: PostgresServer, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            asyncio.run(server._admin("SELECT 1"))
            return
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The server in a container for the session (no durability: fsync off, it is a test).
    On the host's network, listening on loopback only at a free port: it needs no bridge."""
    from testcontainers.core.container import DockerContainer

    port = free_port()
    container = (
        DockerContainer(ensure_image())
        .with_command(
            f"-c listen_addresses=127.0.0.1 -c port={port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        .with_kwargs(network_mode="host", labels={"ava.test": "postgres"})
    )
    with container:
        server = PostgresServer("127.0.0.1", port)
        _wait_ready(server)
        server.prepare_template()
        yield server
