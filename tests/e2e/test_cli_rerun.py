"""`ava jobs rerun` and `ava tenants quota` as a user runs them, against a real server and
real containers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import Cli
from tests.support import thread_server

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ava_platform.executor.runtime_images import build_images

    build_images(["python"], log=lambda _line: None)
    with thread_server(tmp_path_factory.mktemp("rerun") / "ava.db", AVA_RETRY_BASE_S="0.2") as url:
        yield url


def test_rerun_a_failed_job_by_id_and_by_filter(server: str, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path)
    worker = cli.worker(tmp_path, "cli-rerun")
    failed = cli("jobs", "run", worker, "--input", '{"fail": true}', "--wait")
    assert failed.returncode == 1, failed.stderr
    [job] = cli.json("jobs", "list", "--error-type", "handler_error")["data"]
    again = cli.json("jobs", "rerun", job["id"], "--same-version")
    assert (again["rerun_of"], again["worker_version"]) == (job["id"], 1)
    assert again["input"] == {"fail": True}
    waited = cli("jobs", "wait", again["id"])
    assert waited.returncode == 1, waited.stderr  # it failed again, as the input says
    by_filter = cli.json("jobs", "rerun", "--error-type", "handler_error")
    assert sorted(j["rerun_of"] for j in by_filter) == sorted([job["id"], again["id"]])
    assert cli("jobs", "rerun").returncode == 2  # neither ids nor filters


def test_only_the_operator_role_sets_a_quota(server: str, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path)
    refused = cli("tenants", "quota", "set", cli.tenant, "--max-queued", "5")
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    operator = {"AVA_ROLE": "tenant-system-admin", "AVA_TENANT_ID": "ten_ops"}
    done = cli("tenants", "quota", "set", cli.tenant, "--max-queued", "5", "--json", env=operator)
    assert done.returncode == 0, done.stderr
    shown = cli.json("tenants", "quota", "show", cli.tenant)
    assert (shown["max_queued"], shown["effective_max_queued"]) == (5, 5)
