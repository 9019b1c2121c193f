"""The platform image run on its own (`docker run`, driven by testcontainers), not only under
compose: a runtime image missing at start is built before it serves, and jobs run through it.

Everything here is under the tests' own tags (`ava-test/platform`, `ava-test/runtime-*`, set
with AVA_IMAGE_NAMESPACE): the runtime image removed is the tests' copy, never the user's
`ava/runtime-shell`, and the user's images are checked to be unchanged afterwards."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from testcontainers.core.container import DockerContainer

from ava_platform.client import AvaClient, Identity
from tests.integration.test_compose import HOST_CA, Stack, require_compose
from tests.support import (
    ROOT,
    TEST_IMAGE_NAMESPACE,
    TEST_PLATFORM_IMAGE,
    build_test_images,
    image_ids,
    user_image_refs,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

SECRET = "container-test-secret-0123456789"
SHELL_TAG = f"{TEST_IMAGE_NAMESPACE}/runtime-shell:0.1.0"


def _image_exists(tag: str) -> bool:
    return image_ids([tag])[tag] is not None


@pytest.fixture(scope="module")
def users_images() -> dict[str, str | None]:
    """The ids of the user's own images before this module touched the engine."""
    return image_ids(user_image_refs())


@pytest.fixture(scope="module")
def platform_image(
    users_images: dict[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> str:
    require_compose()
    assert SHELL_TAG in build_test_images()
    if HOST_CA.is_file():
        (ROOT / "images" / "platform" / "extra-ca" / "host-ca.crt").write_bytes(
            HOST_CA.read_bytes()
        )
    built = Stack(tmp_path_factory.mktemp("image")).compose("build")
    assert built.returncode == 0, built.stdout + built.stderr
    return TEST_PLATFORM_IMAGE


@pytest.fixture
def platform(platform_image: str) -> Iterator[str]:
    # the (tests') shell runtime image is gone: the container must build it before serving
    subprocess.run(
        ["docker", "image", "rm", "-f", SHELL_TAG], capture_output=True, check=True, timeout=120
    )
    assert not _image_exists(SHELL_TAG)
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    container = (
        DockerContainer(platform_image)
        .with_env("AVA_INTERNAL_SECRET", SECRET)
        .with_env("AVA_SECRET_KEY", key)
        .with_env("AVA_IMAGE_NAMESPACE", TEST_IMAGE_NAMESPACE)
        # cold containers only: a prewarmed one carries no job label, and the test reads the
        # job's image from its container's create event
        .with_env("AVA_WARM_POOL", "0")
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
    platform: str, users_images: dict[str, str | None], tmp_path: Path
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
                # a platform in a container cannot install the host's egress firewall, so it
                # refuses egress jobs (README: egress in the compose deployment)
                "network": "none",
                "source_code": "#!/bin/bash\njq -c '{n: (.n + 1)}' > \"$AVA_RESULT\"\n",
            }
        )
        with _container_creates() as creates:
            job = ava.run_job(worker.id, {"n": 41})
            done = ava.wait_for_job(job.id, timeout_s=120)
    assert done.status == "succeeded", done
    assert done.result == {"n": 42}
    # the job ran in the image the container built
    assert (SHELL_TAG, done.id) in creates, creates
    # the user's `ava/...` images (runtime images and platform) were not replaced or removed
    assert image_ids(user_image_refs()) == users_images


@contextmanager
def _container_creates() -> Iterator[list[tuple[str, str]]]:
    """(image, job id) of each container the engine creates meanwhile, from a live event
    stream: `docker events --since` replays only the engine's last 256 events, which a busy
    engine can have overwritten by the time the job has ended."""
    fmt = '{{.From}} {{index .Actor.Attributes "ava.job_id"}}'
    argv = ["docker", "events", "--filter", "type=container", "--filter", "event=create"]
    proc = subprocess.Popen([*argv, "--format", fmt], stdout=subprocess.PIPE, text=True)
    found: list[tuple[str, str]] = []
    time.sleep(0.5)  # the stream is open before anything is created
    try:
        yield found
    finally:
        time.sleep(0.5)  # the last events reach the stream
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
        for line in out.splitlines():
            image, _, job_id = line.partition(" ")
            found.append((image, job_id.strip()))
