from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support import (
    TEST_IMAGE_NAMESPACE,
    assert_documents_current,
    headers,
    image_ids,
    thread_server,
    user_image_refs,
)

if TYPE_CHECKING:
    from ava_platform.store.database import Database
    from tests.postgres import PostgresServer

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
# every image a test builds or runs is the tests' own: `make test` never rebuilds or removes
# the `ava/...` images a user's `make up` runs on (server processes inherit this too)
os.environ["AVA_IMAGE_NAMESPACE"] = TEST_IMAGE_NAMESPACE


@pytest.fixture(scope="session", autouse=True)
def users_images_stay_as_they_were() -> Iterator[None]:
    """The whole run leaves the `ava/...` images exactly as it found them."""
    if shutil.which("docker") is None:  # `make test-fast` on a machine with no engine
        yield
        return
    before = image_ids(user_image_refs())
    yield
    assert image_ids(user_image_refs()) == before, "make test changed the user's images"


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


# --- the two store backends ------------------------------------------------------------------
# One parametrized fixture runs a store test on both: SQLite (a real file, the unit tier) and
# PostgreSQL (a real server in a container, so the test needs the engine: marked docker).
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.docker)]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    from tests.postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment choosing the backend for a server the test starts: {} for SQLite (its
    file at the test's db_path), AVA_DATABASE_URL of a fresh database for PostgreSQL."""
    if request.param == "sqlite":
        return {}
    server: PostgresServer = request.getfixturevalue("postgres")
    return {"AVA_DATABASE_URL": server.new_database()}


@pytest.fixture
async def store_db(database_env: dict[str, str], db_path: Path) -> AsyncIterator[Database]:
    """An open store on the backend under test, fresh for each test."""
    from ava_platform.store.db import Database as SqliteDatabase
    from ava_platform.store.postgres.db import PostgresDatabase

    url = database_env.get("AVA_DATABASE_URL")
    db: Database = PostgresDatabase(url) if url else SqliteDatabase(db_path)
    await db.open()
    try:
        yield db
    finally:
        await db.close()
    assert_documents_current(db_path)


_TIERS = ("unit", "integration", "e2e", "chaos", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker, taken from its folder, so `pytest -m <tier>` runs
    exactly one tier and a new folder cannot slip a test out of every tier."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier not in _TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of {_TIERS}")
        if tier == "unit" and item.get_closest_marker("docker") is not None:
            tier = "integration"  # a store test run on PostgreSQL needs the engine
        item.add_marker(tier)
