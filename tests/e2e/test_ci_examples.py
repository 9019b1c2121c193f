"""The CI examples under examples/ci/ do what they promise, run as written: their shell steps,
taken from the YAML files and run by bash in a checkout holding examples/ci/worker/ as
worker/, against `ava serve` as a real process on the real Docker engine. They store the
worker's secret, deploy the worker (a real image build), run the job and stream its logs;
the job really runs and succeeds, and two runs of a pipeline get two jobs (never one replayed
through a shared idempotency key), also outside CI where the fallbacks are used.

Only what a CI system does itself is done here: it fills in the `${{ }}` expressions of the
job's `env` (GitHub) and the job's `variables` (GitLab), and the CLI install step is replaced by
the `ava` of this checkout on PATH (the install step only runs `pip install "$AVA_CLI_PACKAGE"`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import (
    ROOT,
    SECRET,
    TEST_IMAGE_NAMESPACE,
    build_test_images,
    headers,
    process_server,
    server_log,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

EXAMPLES = ROOT / "examples" / "ci"
BIN = str(Path(sys.executable).parent)
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]  # GitHub's `shell: bash`
INSTALL = 'pip install "$AVA_CLI_PACKAGE"'
STEP_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`ava serve` as a process, running jobs in the tests' own runtime images."""
    build_test_images(["python"])
    db = tmp_path_factory.mktemp("ci") / "ava.db"
    with process_server(db, AVA_IMAGE_NAMESPACE=TEST_IMAGE_NAMESPACE) as (url, _proc):
        yield url, db


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository as the examples expect it: the example worker folder at worker/."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "worker", repo / "worker")
    return repo


def _expand_github(value: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values[match.group(1)]  # an expression the test does not know fails the test

    return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", one, str(value))


def github_steps(values: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(name, env, script) of every `run` step after the CLI install, as the runner runs them:
    the job's env plus the step's, with their `${{ }}` expressions filled in."""
    workflow: Any = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    job = workflow["jobs"]["run-worker"]
    job_env = {k: _expand_github(v, values) for k, v in job["env"].items()}
    steps = [s for s in job["steps"] if "run" in s]
    assert steps[0]["run"].strip() == INSTALL  # the one step replaced by this checkout's CLI
    out = []
    for step in steps[1:]:
        assert "${{" not in step["run"], f"step {step['name']!r} needs the runner to run"
        env = {**job_env, **{k: _expand_github(v, values) for k, v in step.get("env", {}).items()}}
        out.append((step["name"], env, step["run"]))
    return out


def gitlab_script() -> tuple[dict[str, str], str]:
    """The job's variables (expanded by bash, as GitLab expands them) and its script."""
    pipeline: Any = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline["ava-job"]
    # the CLI install, replaced by this checkout's CLI on PATH
    assert job["before_script"] == ['pip install --quiet "$AVA_CLI_PACKAGE"']
    exports = "".join(f'export {k}="{v}"\n' for k, v in job["variables"].items())
    return dict(job["variables"]), exports + "\n".join(job["script"])


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AVA_", "GITHUB_", "CI_"))}
    base.update(PATH=f"{BIN}:{base.get('PATH', '')}", HOME=str(cwd.parent / "home"))
    return subprocess.run(
        [*BASH, script],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )


def _api(url: str, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/v1/ava", headers=headers(tenant, role="tenant-admin"), timeout=30
    )


def jobs_of(url: str, tenant: str) -> list[dict[str, Any]]:
    with _api(url, tenant) as api:
        worker = api.get("/workers", params={"q": "nightly-report"}).json()["data"]
        assert [w["name"] for w in worker] == ["nightly-report"]
        jobs = api.get(f"/workers/{worker[0]['id']}/jobs").json()["data"]
        versions = api.get(f"/workers/{worker[0]['id']}/versions").json()["data"]
    kinds = {v["version"]: (v["kind"], v["status"]) for v in versions}
    for job in jobs:  # every job ran a deployed bundle, not an empty or inline version
        assert kinds[job["worker_version"]] == ("bundle", "ready"), kinds
    return list(jobs)


def assert_ran(done: subprocess.CompletedProcess[str], ref: str, db: Path) -> dict[str, Any]:
    where = (
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\nserver:\n"
        + server_log(db).read_text()[-3000:]
    )
    assert done.returncode == 0, where
    # --follow streamed the handler's lines, then --wait printed the result
    assert f"building the report for {ref} into #reports" in done.stdout, where
    assert "report done" in done.stdout, where
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"ref": ref, "channel": "#reports", "authorized": True}
    return dict(result)


def test_the_github_actions_steps_run_as_written(server: tuple[str, Path], checkout: Path) -> None:
    url, db = server
    tenant = f"ten_{uuid.uuid4().hex[:12]}"
    values = {
        "vars.AVA_URL": url,
        "vars.AVA_TENANT_ID": tenant,
        "vars.AVA_CLI_PACKAGE": str(ROOT),
        "secrets.AVA_INTERNAL_SECRET": SECRET,
        "secrets.REPORT_TOKEN": f"tok-{uuid.uuid4().hex}",
        "github.actor_id": "583231",
    }
    # one run on a runner (its variables set), one outside Actions (the fallbacks)
    runner = {"GITHUB_SHA": "abc123", "GITHUB_RUN_ID": "9001", "GITHUB_RUN_ATTEMPT": "1"}
    for ci_vars, ref in ((runner, "abc123"), ({}, "local")):
        for name, env, script in github_steps(values):
            done = run_bash(script, checkout, {**env, **ci_vars})
            if name.startswith("Run the job"):
                assert_ran(done, ref, db)
            else:
                assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    jobs = jobs_of(url, tenant)
    assert len(jobs) == 2  # two runs, two idempotency keys, two jobs
    assert {j["status"] for j in jobs} == {"succeeded"}
    assert {j["result"]["ref"] for j in jobs} == {"abc123", "local"}


def test_the_gitlab_script_runs_as_written(server: tuple[str, Path], checkout: Path) -> None:
    url, db = server
    tenant = f"ten_{uuid.uuid4().hex[:12]}"
    variables, script = gitlab_script()
    assert variables["AVA_ROLE"] == "tenant-developer"
    settings = {  # the project's CI/CD variables
        "AVA_URL": url,
        "AVA_TENANT_ID": tenant,
        "AVA_INTERNAL_SECRET": SECRET,
        "AVA_CLI_PACKAGE": str(ROOT),
        "REPORT_TOKEN": f"tok-{uuid.uuid4().hex}",
    }
    # two runs outside GitLab: no CI_* variable set, yet two keys and two jobs
    for _ in range(2):
        assert_ran(run_bash(script, checkout, settings), "local", db)
    jobs = jobs_of(url, tenant)
    assert len(jobs) == 2
    assert {j["status"] for j in jobs} == {"succeeded"}
