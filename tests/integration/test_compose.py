"""docker-compose.yml end to end: build the platform image, bring the stack up with
docker-compose (Debian's 1.29, or `docker compose`), run jobs through the `ava` CLI against it,
check the deployment's shape, restart it, and tear it all down.

The stack is built and run under the tests' own image tags (`ava-test/...`, through
AVA_PLATFORM_IMAGE and AVA_IMAGE_NAMESPACE), so a test run leaves the user's `ava/...` images
exactly as it found them (checked). Without docker-compose (or `docker compose`) these tests
fail: `make test` installs it (scripts/ensure-docker.sh --for-tests)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ROOT,
    TEST_IMAGE_NAMESPACE,
    TEST_PLATFORM_IMAGE,
    build_test_images,
    free_port,
    image_ids,
    user_image_refs,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

AVA = str(Path(sys.executable).with_name("ava"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
SECRET = "compose-test-secret-0123456789"
HANDLER = """
def handler(input, env):
    print("adding", input["numbers"], flush=True)
    if input.get("fail"):
        raise RuntimeError("asked to fail")
    return {"sum": sum(input["numbers"])}
"""


NO_COMPOSE = (
    "neither docker-compose nor `docker compose` is installed, so the compose deployment "
    "cannot be tested: `make test` installs it (bash scripts/ensure-docker.sh --for-tests); "
    "install docker-compose and run again"
)


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False, timeout=60
    )
    return ["docker", "compose"] if probe.returncode == 0 else None


def require_compose() -> list[str]:
    """The compose command; a missing one fails the test (never a skip: a green run must
    mean the deployment was tested)."""
    command = compose_command()
    if command is None:
        pytest.fail(NO_COMPOSE, pytrace=False)
    return command


class Stack:
    def __init__(self, tmp: Path) -> None:
        self.project = f"avatest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env_file = tmp / "ava.env"
        key = base64.urlsafe_b64encode(os.urandom(32)).decode()
        env_file.write_text(f"AVA_INTERNAL_SECRET={SECRET}\nAVA_SECRET_KEY={key}\n")
        self.env = {
            **os.environ,
            "AVA_ENV_FILE": str(env_file),
            "AVA_PORT": str(self.port),
            "AVA_PLATFORM_IMAGE": TEST_PLATFORM_IMAGE,
            "AVA_IMAGE_NAMESPACE": TEST_IMAGE_NAMESPACE,
        }
        self.base = [
            *require_compose(),
            "-p",
            self.project,
            "-f",
            str(ROOT / "docker-compose.yml"),
        ]

    def compose(self, *args: str, timeout_s: float = 420) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout_s,
            check=False,
        )

    def container(self) -> str:
        out = self.compose("ps", "-q", "platform").stdout.strip()
        assert out, "the platform container is not there"
        return out.splitlines()[0]

    def wait_ready(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        logs = self.compose("logs", "--tail", "40").stdout
        raise AssertionError(f"the stack did not become ready:\n{logs}")


@pytest.fixture(scope="module")
def users_images() -> dict[str, str | None]:
    """The ids of the user's own images before this module touched the engine."""
    return image_ids(user_image_refs())


@pytest.fixture(scope="module")
def stack(
    users_images: dict[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    require_compose()
    build_test_images()  # what `make compose-prep` does: the FROM image exists
    if HOST_CA.is_file():
        shutil.copyfile(HOST_CA, ROOT / "images" / "platform" / "extra-ca" / "host-ca.crt")
    s = Stack(tmp_path_factory.mktemp("compose"))
    try:
        up = s.compose("up", "-d", "--build")
        assert up.returncode == 0, up.stdout + up.stderr
        s.wait_ready()
        yield s
    finally:
        down = s.compose("down", "-v", "--remove-orphans", timeout_s=120)
        assert down.returncode == 0, down.stderr


def ava(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AVA_")}
    env.update(
        AVA_URL=stack.url,
        AVA_INTERNAL_SECRET=SECRET,
        AVA_TENANT_ID="ten_compose",
        AVA_USER_ID="usr_ci",
        HOME=str(ROOT / ".data" / "no-home"),
    )
    return subprocess.run([AVA, *args], capture_output=True, text=True, env=env, timeout=180)


def test_a_job_runs_through_the_cli_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "main.py"
    source.write_text(HANDLER)
    created = ava(
        stack,
        "workers",
        "create",
        "--name",
        "adder",
        "--runtime",
        "python",
        "--source",
        str(source),
        # the platform in a container cannot install the host's egress firewall, so it
        # refuses egress jobs (README: egress in the compose deployment)
        "--network",
        "none",
    )
    assert created.returncode == 0, created.stderr
    ok = ava(
        stack, "jobs", "run", "adder", "--input", '{"numbers": [1, 2, 3]}', "--wait", "--follow"
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["adding [1, 2, 3]", '{"sum":6}']
    bad = ava(stack, "jobs", "run", "adder", "--input", '{"numbers": [], "fail": true}', "--wait")
    assert bad.returncode == 1 and "asked to fail" in bad.stderr
    metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
    assert 'ava_jobs{runtime="python",status="succeeded"} 1.0' in metrics
    egress = ava(
        stack, "workers", "create", "--name", "out", "--runtime", "python", "--source", str(source)
    )
    assert egress.returncode == 0, egress.stderr
    refused = ava(stack, "jobs", "run", "out", "--input", '{"numbers": [1]}', "--wait")
    assert refused.returncode != 0 and "egress_unavailable" in refused.stderr, refused


def test_the_deployment_has_the_promised_shape(stack: Stack) -> None:
    info = json.loads(
        subprocess.run(
            ["docker", "inspect", stack.container()], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/data"]["Type"] == "volume"
    assert mounts["/data"]["Name"] == f"{stack.project}_ava-data"
    assert mounts["/var/run/docker.sock"]["Type"] == "bind"
    assert info["State"]["Health"]["Status"] in ("healthy", "starting")
    assert "readyz" in " ".join(info["Config"]["Healthcheck"]["Test"])
    ports = info["HostConfig"]["PortBindings"]["8080/tcp"]
    assert ports == [{"HostIp": "127.0.0.1", "HostPort": str(stack.port)}]
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["AVA_INTERNAL_SECRET"] == SECRET  # from the env file
    logs = stack.compose("logs", "--no-color", "platform").stdout
    # runtime images were checked (built if missing), under the namespace it was given
    assert f"{TEST_IMAGE_NAMESPACE}/runtime-python:0.1.0" in logs
    assert info["Config"]["Image"] == TEST_PLATFORM_IMAGE
    job_lines = [
        json.loads(line[line.index("{") :])
        for line in logs.splitlines()
        if '"attempt_finished"' in line
    ]
    assert job_lines and {"job_id", "worker_id", "tenant_id"} <= set(job_lines[0])


def test_data_survives_a_restart(stack: Stack) -> None:
    before = ava(stack, "jobs", "list", "--json")
    assert before.returncode == 0, before.stderr
    restart = stack.compose("restart", "platform", timeout_s=120)
    assert restart.returncode == 0, restart.stderr
    stack.wait_ready()
    after = ava(stack, "jobs", "list", "--json")
    assert (
        json.loads(after.stdout)["meta"]["total"] == json.loads(before.stdout)["meta"]["total"] >= 2
    )


def test_the_users_images_are_left_as_they_were(
    stack: Stack, users_images: dict[str, str | None]
) -> None:
    # built, started and restarted: the user's `ava/...` images still point where they did
    assert image_ids(user_image_refs()) == users_images
