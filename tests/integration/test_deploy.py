"""Deploy end to end: a bundle with a dependency is built into `ava/worker-<id>:<v>` and its
handler imports that dependency at run time; a failed build keeps the old version; rollback;
a running job keeps the version it started with."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Ava

pytestmark = pytest.mark.docker
BUILD_TIMEOUT_S = 300

MS_LOCK = {
    "name": "ava-node-dep",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {"name": "ava-node-dep", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}},
        "node_modules/ms": {
            "version": "2.1.3",
            "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
            "integrity": "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==",
            "license": "MIT",
        },
    },
}


def tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o600  # the build makes it readable for the job's user anyway
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buf.getvalue()


BUILT: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def remove_worker_images() -> Iterator[None]:
    """The images these tests build go with them."""
    yield
    for image in BUILT:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True, check=False)


def deploy(
    ava: Ava, worker_id: str, data: bytes, media: str = "application/gzip"
) -> dict[str, Any]:
    resp = ava.client.post(
        f"/workers/{worker_id}/deploy", content=data, headers={"content-type": media}
    )
    assert resp.status_code == 202, resp.text
    version = resp.json()
    assert version["status"] == "building"
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while time.monotonic() < deadline:
        info = ava.client.get(f"/workers/{worker_id}/versions/{version['version']}").json()
        if info["status"] != "building":
            BUILT.append(f"ava/worker-{worker_id}:{info['version']}")
            return dict(info)
        time.sleep(0.5)
    raise AssertionError(f"build of {worker_id} v{version['version']} did not finish")


def bundle_worker(ava: Ava, runtime: str, **fields: Any) -> dict[str, Any]:
    resp = ava.client.post(
        "/workers", json={"name": f"bundle-{runtime}", "runtime": runtime, **fields}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_python_bundle_with_a_requirements_dependency(ava: Ava) -> None:
    worker = bundle_worker(ava, "python")
    assert ava.trigger(worker["id"]).status_code == 409  # no source yet
    files = {
        "requirements.txt": "tomli-w==1.2.0\n",
        "main.py": "import tomli_w\nfrom helper import key\n\n"
        "def handler(input, env):\n    return {'toml': tomli_w.dumps({key(): input['n']})}\n",
        "helper.py": "def key():\n    return 'answer'\n",
    }
    version = deploy(ava, worker["id"], tgz(files))
    log = ava.client.get(f"/workers/{worker['id']}/versions/{version['version']}/build-log").text
    assert version["status"] == "ready", log
    assert "installing dependencies from requirements.txt" in log
    assert version["image"] == f"ava/worker-{worker['id']}:2"
    assert version["source_digest"].startswith("sha256:") and version["created_by"] == "usr_test"
    assert ava.client.get(f"/workers/{worker['id']}").json()["version"] == 2
    job = ava.run(worker["id"], {"n": 42})
    assert job["status"] == "succeeded", (job, ava.logs(job["id"]))
    assert job["result"] == {"toml": "answer = 42\n"} and job["worker_version"] == 2
    inspect = subprocess.run(
        ["docker", "image", "inspect", version["image"], "--format", "{{json .Config}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(inspect.stdout)
    assert config["User"] == "10001:10001" and config["Cmd"][0] == "python3"


def test_nodejs_bundle_with_a_package_json_dependency(ava: Ava) -> None:
    worker = bundle_worker(ava, "nodejs")
    files = {
        "package.json": json.dumps(
            {"name": "ava-node-dep", "version": "1.0.0", "dependencies": {"ms": "2.1.3"}}
        ),
        "package-lock.json": json.dumps(MS_LOCK),
        "index.js": "const ms = require('ms');\n"
        "module.exports = async function handler({ input }) { return { ms: ms(input.t) } };\n",
    }
    version = deploy(ava, worker["id"], zipped(files), "application/zip")
    log = ava.client.get(f"/workers/{worker['id']}/versions/{version['version']}/build-log").text
    assert version["status"] == "ready", log
    assert "npm-cli.js ci" in log
    job = ava.run(worker["id"], {"t": "2h"})
    assert job["status"] == "succeeded", (job, ava.logs(job["id"]))
    assert job["result"] == {"ms": 7_200_000}


def test_a_failed_build_keeps_the_current_version(ava: Ava) -> None:
    worker = ava.worker("python", "def handler(input, env):\n    return 'v1'\n")
    files = {
        "requirements.txt": "ava-no-such-package-for-tests==9.9.9\n",
        "main.py": "def handler(input, env):\n    return 'v2'\n",
    }
    version = deploy(ava, worker["id"], tgz(files))
    assert version["status"] == "failed" and version["error"], version
    log = ava.client.get(f"/workers/{worker['id']}/versions/{version['version']}/build-log").text
    assert "ava-no-such-package-for-tests" in log and "build failed" in log
    assert ava.client.get(f"/workers/{worker['id']}").json()["version"] == 1
    job = ava.run(worker["id"])
    assert job["result"] == "v1" and job["worker_version"] == 1
    resp = ava.client.post(f"/workers/{worker['id']}/rollback", json={"version": 2})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "version_not_ready"


SLEEPY = (
    "import time\n\ndef handler(input, env):\n"
    "    time.sleep(input.get('s', 0))\n    return '{tag}'\n"
)


def test_rollback_and_running_jobs_keep_their_version(ava: Ava) -> None:
    worker = ava.worker("python", SLEEPY.format(tag="v1"))
    wid = worker["id"]
    v2 = deploy(ava, wid, tgz({"main.py": SLEEPY.format(tag="v2")}))
    assert v2["status"] == "ready"
    assert ava.run(wid)["result"] == "v2"
    slow = ava.trigger(wid, {"s": 4}).json()
    ava.wait_for(slow["id"], until=lambda j: j["status"] == "running")
    rolled = ava.client.post(f"/workers/{wid}/rollback", json={"version": 1})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == 1
    assert ava.run(wid)["result"] == "v1"  # new jobs: the rolled-back version
    finished = ava.wait_for(slow["id"])
    assert finished["result"] == "v2" and finished["worker_version"] == 2  # kept its version
    versions = ava.client.get(f"/workers/{wid}/versions").json()
    assert [(v["version"], v["kind"], v["current"]) for v in versions["data"]] == [
        (2, "bundle", False),
        (1, "inline", True),
    ]
    forward = ava.client.post(f"/workers/{wid}/rollback", json={"version": 2})
    assert forward.status_code == 200 and ava.run(wid)["result"] == "v2"
    assert ava.client.post(f"/workers/{wid}/rollback", json={"version": 7}).status_code == 404
