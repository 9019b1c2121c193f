from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import headers, thread_server

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real server for the session; tests isolate themselves by tenant."""
    with thread_server(tmp_path_factory.mktemp("db") / "ava.db") as url:
        yield url


@pytest.fixture
def tenant_headers() -> Callable[..., dict[str, str]]:
    """Headers for a fresh tenant per test: `tenant_headers(role=..., tenant=...)`."""
    return headers


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    """A client for a fresh tenant with the admin role."""
    with httpx.Client(base_url=f"{server_url}/v1/ava", headers=headers(), timeout=30) as client:
        yield client


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ava.db"
