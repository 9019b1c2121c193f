"""The sandbox's pure parts: the firewall rules' text, the container spec every job gets, and
how the API refuses what the engine cannot isolate (a gVisor worker on an engine without
runsc: 422; an egress job when the rules could not be installed: 503), on a real server with
a real SQLite file and a scripted executor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ava_platform.api.app import create_app
from ava_platform.config import load_settings
from ava_platform.errors import ConfigError
from ava_platform.executor.base import RunSpec
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.egress import BLOCKED_V4, EgressGuard, rules_v4, rules_v6
from ava_platform.executor.fake import FakeExecutor
from ava_platform.executor.sandbox_spec import hardening
from ava_platform.service.sandbox import OpenSandbox
from ava_platform.wiring import Platform
from tests.support import app_server, headers, server_env

AUTH = headers(tenant="ten_sandbox", role="tenant-admin", user="usr_sandbox")
PY = {"name": "w", "runtime": "python", "source_code": "def handler(i, e):\n    return i\n"}


def spec(**fields: object) -> RunSpec:
    base: dict[str, object] = {
        "job_id": "job_1",
        "tenant_id": "ten_1",
        "worker_id": "wkr_1",
        "attempt": 1,
        "image": "img",
        "envelope": b"{}",
        "memory_mb": 128,
        "cpus": 0.5,
        "network_enabled": True,
        "timeout_s": 10.0,
    }
    return RunSpec(**{**base, **fields})  # type: ignore[arg-type]


def test_every_container_keeps_the_default_seccomp_profile_and_drops_everything() -> None:
    for shape in (spec(), spec(network_enabled=False), spec(isolation="gvisor")):
        options = hardening(shape)
        assert not any("seccomp" in o or "apparmor" in o for o in options["security_opt"])
        assert options["security_opt"] == ["no-new-privileges"]
        assert "entrypoint" not in options  # ava-seal, the images' entrypoint, always runs
        assert options["cap_drop"] == ["ALL"] and "cap_add" not in options
        assert options["privileged"] is False and options["read_only"] is True
        assert options["pids_limit"] > 0 and options["mem_limit"] == "128m"


def test_egress_containers_join_the_managed_network_without_ipv6() -> None:
    options = hardening(spec())
    assert options["network_mode"] == "ava-egress"
    assert options["sysctls"]["net.ipv6.conf.all.disable_ipv6"] == "1"
    assert hardening(spec(network_enabled=False))["network_mode"] is None


def test_isolation_picks_the_runtime() -> None:
    assert "runtime" not in hardening(spec())
    assert hardening(spec(isolation="gvisor"))["runtime"] == "runsc"


def test_rules_allow_chosen_ranges_and_dns_before_dropping_the_rest() -> None:
    text = rules_v4(["10.9.0.0/16"], ["10.255.255.53"])
    lines = text.splitlines()
    allow = lines.index("-A AVA-EGRESS -d 10.9.0.0/16 -j RETURN")
    dns = lines.index("-A AVA-EGRESS -d 10.255.255.53/32 -p udp --dport 53 -j RETURN")
    first_drop = lines.index("-A AVA-EGRESS -d 0.0.0.0/8 -j DROP")
    assert allow < first_drop and dns < first_drop
    for cidr in ("10.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "224.0.0.0/4"):
        assert cidr in BLOCKED_V4 and f"-A AVA-EGRESS -d {cidr} -j DROP" in lines
    assert lines[lines.index("COMMIT") - 1] == "-A AVA-EGRESS-IN -j DROP"
    # DNS: port 53 only; nothing else of the resolver's
    assert not any("10.255.255.53" in line and "--dport 53" not in line for line in lines)
    assert "-A AVA-EGRESS -j DROP" in rules_v6()


def test_a_guard_that_cannot_install_rules_says_why_and_stays_unready() -> None:
    def failing(argv: object, stdin: object) -> str:
        raise RuntimeError("iptables-restore: Permission denied (you must be root)")

    class Net:
        def inspect_network(self, name: str) -> dict[str, object]:
            return {
                "Options": {
                    "com.docker.network.bridge.enable_icc": "false",
                    "com.docker.network.bridge.name": "ava-egress0",
                }
            }

    guard = EgressGuard(run=failing, client=Net())
    status = guard.prepare()
    assert not status.ready and "Permission denied" in status.reason
    assert guard.status == status


def test_allow_cidrs_are_read_and_checked() -> None:
    env = server_env(Path("/nonexistent/ava.db"), AVA_EGRESS_ALLOW_CIDRS="10.9.0.0/16, 192.168.5.7")
    assert load_settings(env).egress_allow_cidrs == ("10.9.0.0/16", "192.168.5.7/32")
    with pytest.raises(ConfigError, match="AVA_EGRESS_ALLOW_CIDRS"):
        load_settings({**env, "AVA_EGRESS_ALLOW_CIDRS": "10.0.0.0/33"})


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[httpx.Client]:
    """A server whose engine has no runsc and could not install the egress rules."""
    settings = load_settings(server_env(tmp_path / "ava.db"))
    sandbox = OpenSandbox(runtimes=frozenset({"runc"}), egress="iptables is not installed")
    platform = Platform(
        settings, executor=FakeExecutor(), builder=FakeImageBuilder(), sandbox=sandbox
    )
    with (
        app_server(create_app(platform, internal_secret=settings.internal_secret)) as url,
        httpx.Client(base_url=f"{url}/v1/ava", headers=AUTH, timeout=10) as client,
    ):
        yield client


def test_gvisor_is_refused_with_422_where_the_engine_has_no_runsc(limited: httpx.Client) -> None:
    resp = limited.post("/workers", json={**PY, "isolation": "gvisor"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "isolation"
    assert "runsc" in resp.json()["error"]["message"]
    worker = limited.post("/workers", json={**PY, "network": "none"}).json()
    assert worker["isolation"] == "container"
    patched = limited.patch(f"/workers/{worker['id']}", json={"isolation": "gvisor"})
    assert patched.status_code == 422 and "runsc" in patched.text
    assert limited.get(f"/workers/{worker['id']}").json()["isolation"] == "container"


def test_egress_jobs_are_refused_with_503_when_unprotected(limited: httpx.Client) -> None:
    egress = limited.post("/workers", json=PY).json()
    resp = limited.post(f"/workers/{egress['id']}/jobs", json={"input": {}})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "egress_unavailable"
    assert "iptables is not installed" in resp.json()["error"]["message"]
    assert limited.get("/jobs").json()["meta"]["total"] == 0  # nothing was queued
    offline = limited.post("/workers", json={**PY, "network": "none"}).json()
    assert limited.post(f"/workers/{offline['id']}/jobs", json={"input": {}}).status_code == 202
