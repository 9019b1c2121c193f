"""`ava serve --role`: the settings refuse a role or database URL they do not know; a
scheduler-only process answers health, readiness and metrics but no API; an api-only
process runs no scheduler."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ava_platform.api.app import create_app
from ava_platform.config import load_settings
from ava_platform.errors import ConfigError
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.wiring import Platform
from tests.support import app_server, headers, server_env


@pytest.mark.parametrize(
    ("name", "value"),
    [("AVA_ROLE", "worker"), ("AVA_DATABASE_URL", "mysql://x"), ("AVA_DATABASE_URL", "x.db")],
)
def test_unknown_role_or_database_url_is_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(server_env(tmp_path / "ava.db", **{name: value}))
    assert name in raised.value.message


def test_a_scheduler_process_serves_no_api(tmp_path: Path) -> None:
    settings = load_settings(server_env(tmp_path / "ava.db", AVA_ROLE="scheduler"))
    platform = Platform(settings, executor=FakeExecutor(), builder=FakeImageBuilder())
    app = create_app(platform, internal_secret=settings.internal_secret, serve_api=False)
    with app_server(app) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 200
        assert httpx.get(f"{url}/v1/ava/workers", headers=headers()).status_code == 404


def test_an_api_process_runs_no_scheduler(tmp_path: Path) -> None:
    settings = load_settings(server_env(tmp_path / "ava.db", AVA_ROLE="api"))
    platform = Platform(settings, executor=FakeExecutor(), builder=FakeImageBuilder())
    app = create_app(platform, internal_secret=settings.internal_secret)
    with app_server(app) as url:
        with httpx.Client(base_url=f"{url}/v1/ava", headers=headers(), timeout=10) as c:
            wid = c.post("/workers", json={"name": "w", "runtime": "python", "source_code": "x"})
            job = c.post(
                f"/workers/{wid.json()['id']}/jobs", json={"input": {}}, params={"wait": 1}
            )
            assert job.json()["status"] == "queued"  # nobody here claims it
        assert platform.scheduler.running_count == 0
