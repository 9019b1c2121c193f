"""The CI examples under examples/ci/ do what they promise: their `ava jobs run` step, run by a
shell exactly as written (CI expressions filled in), passes when the job succeeds and fails the
step when the job fails. Against a real server with a scripted executor (no Docker needed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ava_platform.client import AvaClient, Identity
from tests.scripted import scripted_server
from tests.support import ROOT, SECRET

EXAMPLES = ROOT / "examples" / "ci"
BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_server(tmp_path_factory.mktemp("ci") / "ava.db", delay_s=0.5) as url:
        yield url


def github_run_step(sha: str, run_id: str) -> str:
    workflow: Any = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["run-worker"]["steps"]
    script = next(s["run"] for s in steps if "ava jobs run" in s.get("run", ""))
    values = {"github.sha": sha, "github.run_id": run_id, "github.run_attempt": "1"}
    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], script)


def gitlab_run_step() -> str:
    pipeline: Any = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    return next(line for line in pipeline["ava-job"]["script"] if "ava jobs run" in line)


def run_step(
    server: str, tenant: str, script: str, **ci_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVA_")}
    env.update(
        PATH=f"{BIN}:{env.get('PATH', '')}",
        AVA_URL=server,
        AVA_INTERNAL_SECRET=SECRET,
        AVA_TENANT_ID=tenant,
        AVA_USER_ID="ci-bot",
        AVA_ROLE="tenant-developer",
        **ci_vars,
    )
    return subprocess.run(
        ["bash", "-e", "-c", script], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def tenant(server: str) -> str:
    tenant = f"ten_{uuid.uuid4().hex[:12]}"
    with AvaClient(server, Identity(SECRET, tenant, "usr_setup", "tenant-admin")) as ava:
        ava.create_worker({"name": "nightly-report", "runtime": "python", "source_code": "x = 1"})
    return tenant


def test_github_actions_step_gates_on_the_job(server: str, tenant: str) -> None:
    ok = run_step(server, tenant, github_run_step("abc123", "41"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[:2] == ["hello", "world"]  # --follow streamed the logs
    failed = run_step(server, tenant, github_run_step("bad", "42"))
    assert failed.returncode == 1, failed.stderr
    assert "failed" in failed.stderr
    # a re-run of the same CI run (same idempotency key) gets the first job, not a new one
    again = run_step(server, tenant, github_run_step("abc123", "41"))
    assert again.returncode == 0 and again.stderr.split()[0] == ok.stderr.split()[0]


def test_gitlab_step_gates_on_the_job(server: str, tenant: str) -> None:
    script = gitlab_run_step()
    ok = run_step(server, tenant, script, CI_COMMIT_SHA="abc123", CI_PIPELINE_ID="7", CI_JOB_ID="9")
    assert ok.returncode == 0, ok.stderr
    failed = run_step(
        server, tenant, script, CI_COMMIT_SHA="bad", CI_PIPELINE_ID="8", CI_JOB_ID="9"
    )
    assert failed.returncode == 1, failed.stderr
