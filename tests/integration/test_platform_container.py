"""The platform image run on its own (`docker run`, driven by testcontainers), not only under
compose: a runtime image missing at start is built before it serves, and jobs run through it."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testcontainers.core.container import DockerContainer

from ava_platform.client import AvaClient, Identity
from ava_platform.images import runtime_image_tag
from tests.integration.test_compose import HOST_CA, Stack, compose_command
from tests.support import ROOT

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

SECRET = "container-test-secret-0123456789"
SHELL_TAG = runtime_image_tag("shell")


def _image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def platform_image(runtime_images: list[str], tmp_path_factory: pytest.TempPathFactory) -> str:
    if compose_command() is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    if HOST_CA.is_file():
        (ROOT / "images" / "platform" / "extra-ca" / "host-ca.crt").write_bytes(
            HOST_CA.read_bytes()
        )
    built = Stack(tmp_path_factory.mktemp("image")).compose("build")
    assert built.returncode == 0, built.stdout + built.stderr
    return "ava/platform:0.1.0"


@pytest.fixture
def platform(platform_image: str) -> Iterator[str]:
    # the shell runtime image is gone: the container must build it before serving
    subprocess.run(["docker", "image", "rm", "-f", SHELL_TAG], capture_output=True, check=True)
    assert not _image_exists(SHELL_TAG)
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    container = (
        DockerContainer(platform_image)
        .with_env("AVA_INTERNAL_SECRET", SECRET)
        .with_env("AVA_SECRET_KEY", key)
        .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
        .with_exposed_ports(8080)
    )
    with container:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8080)}"
        _wait_ready(url, container)
        yield url
    assert _image_exists(SHELL_TAG)  # left in place for the tests after this one


def _wait_ready(url: str, container: DockerContainer, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    out, err = container.get_logs()
    raise AssertionError(f"platform container not ready:\n{out[-3000:]!r}\n{err[-3000:]!r}")


def test_missing_runtime_image_is_built_on_start_and_runs_jobs(
    platform: str, tmp_path: Path
) -> None:
    assert _image_exists(SHELL_TAG)
    who = Identity(
        internal_secret=SECRET, tenant_id="ten_tc", user_id="usr_tc", role="tenant-admin"
    )
    with AvaClient(platform, who) as ava:
        worker = ava.create_worker(
            {
                "name": "sh",
                "runtime": "shell",
                "source_code": "#!/bin/bash\njq -c '{n: (.n + 1)}' > \"$AVA_RESULT\"\n",
            }
        )
        job = ava.run_job(worker.id, {"n": 41})
        done = ava.wait_for_job(job.id, timeout_s=120)
    assert done.status == "succeeded", done
    assert done.result == {"n": 42}
