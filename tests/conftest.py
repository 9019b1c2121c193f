from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    TEST_IMAGE_NAMESPACE,
    headers,
    image_ids,
    thread_server,
    user_image_refs,
)

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


_TIERS = ("unit", "integration", "e2e", "chaos", "browser")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker, taken from its folder, so `pytest -m <tier>` runs
    exactly one tier and a new folder cannot slip a test out of every tier."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier not in _TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of {_TIERS}")
        item.add_marker(tier)
