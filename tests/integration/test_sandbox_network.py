"""Egress goes out, never in or sideways (README: Security model). Every address tried is on
this machine: test hosts live in network namespaces this test makes (a public TEST-NET-2
address, a private one, a link-local one), the host's own addresses, and another job's
container. The real metadata address and outside hosts are never contacted: the rules are
read back with `iptables -S` instead."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

from tests.integration.conftest import Ava

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2"
)

PORT = 18080
# (role, host-side address, namespace address): each a /30 of its own
TEST_HOSTS = {
    "public": ("198.51.100.1", "198.51.100.2"),  # TEST-NET-2: public as far as the rules go
    "private": ("10.213.7.1", "10.213.7.2"),
    "link_local": ("169.254.77.1", "169.254.77.2"),
}

PY_PROBE = """
import socket, threading
def probe(host, port, out):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
            out[f'{host}:{port}'] = 'ok ' + s.recv(64).decode(errors='replace').split('\\r')[0]
    except Exception as e:
        out[f'{host}:{port}'] = 'error ' + type(e).__name__
def handler(input, env):
    out = {}
    threads = [threading.Thread(target=probe, args=(h, p, out)) for h, p in input['targets']]
    for t in threads: t.start()
    for t in threads: t.join()
    return out
"""
PY_SERVE = """
import http.server, threading, time
def handler(input, env):
    srv = http.server.HTTPServer(('0.0.0.0', 8080), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print('serving', flush=True)
    time.sleep(float(input.get('s', 30)))
    return 'served'
"""
# a test host's whole server (http.server would look its own name up in DNS first)
ANSWER = """
import socket, sys
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    conn, _ = srv.accept()
    conn.recv(1024)
    conn.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nhello')
    conn.close()
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


@contextmanager
def namespace_host(role: str, host_ip: str, ns_ip: str) -> Iterator[None]:
    """A namespace holding `ns_ip` with an HTTP server on PORT, routed from the host."""
    ns = f"avat-{role[:4]}-{os.getpid() % 100000}"
    veth = f"avt{role[:2]}{os.getpid() % 100000}"
    sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"{host_ip}/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        for cmd in (
            ["ip", "addr", "add", f"{ns_ip}/30", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "link", "set", "lo", "up"],
            ["ip", "route", "add", "default", "via", host_ip],
        ):
            sh("ip", "netns", "exec", ns, *cmd)
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-I", "-c", ANSWER, ns_ip, str(PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_listening(ns_ip)
        yield
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _wait_listening(ip: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, PORT), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"test host {ip} did not start")


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A port the test opens on every host address; it answers like an HTTP server."""
    srv = socket.create_server(("0.0.0.0", 0))
    port = int(srv.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nhost secret")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    stop.set()
    thread.join(timeout=5)
    srv.close()


def _network() -> dict[str, object]:
    return dict(json.loads(sh("docker", "network", "inspect", "ava-egress"))[0])


def _host_addresses() -> list[str]:
    out = sh("ip", "-4", "-o", "addr", "show", "scope", "global")
    addrs = [line.split()[3].split("/")[0] for line in out.splitlines()]
    return [a for a in addrs if not a.startswith(tuple(h[0] for h in TEST_HOSTS.values()))]


def _container_ip(job_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ids = sh("docker", "ps", "-q", "--filter", f"label=ava.job_id={job_id}").split()
        if ids:
            nets = json.loads(sh("docker", "inspect", ids[0]))[0]["NetworkSettings"]["Networks"]
            return str(nets["ava-egress"]["IPAddress"])
        time.sleep(0.2)
    raise AssertionError(f"no container for {job_id}")


def test_egress_reaches_public_hosts_only(ava: Ava, host_listener: int) -> None:
    with ExitStack() as stack:
        for role, (host_ip, ns_ip) in TEST_HOSTS.items():
            stack.enter_context(namespace_host(role, host_ip, ns_ip))
        # tenant B's job serves on its container's address: the host reaches it, A must not
        other = ava.worker("python", PY_SERVE, timeout_seconds=60)
        serving = ava.trigger(other["id"], {"s": 40}).json()
        ava.wait_for(serving["id"], until=lambda j: "serving" in ava.logs(j["id"]), timeout_s=60)
        other_ip = _container_ip(serving["id"])
        socket.create_connection((other_ip, 8080), timeout=3).close()  # it does serve

        gateway = _network()["IPAM"]["Config"][0]["Gateway"]  # type: ignore[index]
        targets = {
            "public": (TEST_HOSTS["public"][1], PORT),
            "private": (TEST_HOSTS["private"][1], PORT),
            "link_local": (TEST_HOSTS["link_local"][1], PORT),
            "gateway": (gateway, host_listener),
            "other_job": (other_ip, 8080),
            **{f"host_{a}": (a, host_listener) for a in _host_addresses()},
        }
        prober = ava.worker("python", PY_PROBE, timeout_seconds=30)
        job = ava.run(prober["id"], {"targets": list(targets.values())}, wait=60)
        ava.client.post(f"/jobs/{serving['id']}/cancel")

    assert job["status"] == "succeeded", job
    seen = {name: job["result"][f"{h}:{p}"] for name, (h, p) in targets.items()}
    assert seen.pop("public").startswith("ok HTTP/1.0 200"), seen
    for name, outcome in seen.items():
        assert outcome.startswith("error"), (name, outcome)


def test_rules_are_installed_on_the_managed_bridge_only(ava: Ava) -> None:
    worker = ava.worker("python", "def handler(input, env):\n    return 1\n")
    assert ava.run(worker["id"])["status"] == "succeeded"  # the platform has prepared egress
    options = _network()["Options"]
    assert options == {
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.name": "ava-egress0",
    }
    jumps = [r for r in sh("iptables", "-S", "DOCKER-USER").splitlines() if "AVA-EGRESS" in r]
    assert jumps == ["-A DOCKER-USER -i ava-egress0 -j AVA-EGRESS"]
    assert "-A INPUT -i ava-egress0 -j AVA-EGRESS-IN" in sh("iptables", "-S", "INPUT")
    chain = sh("iptables", "-S", "AVA-EGRESS").splitlines()
    for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert f"-A AVA-EGRESS -d {cidr} -j DROP" in chain
    for cidr in ("100.64.0.0/10", "127.0.0.0/8", "224.0.0.0/4"):
        assert f"-A AVA-EGRESS -d {cidr} -j DROP" in chain
    # DNS: port 53 of the engine's resolvers only, before the drops
    dns = [r for r in chain if "--dport 53" in r]
    assert dns and all(r.endswith("-j RETURN") for r in dns)
    assert chain.index(dns[-1]) < chain.index("-A AVA-EGRESS -d 10.0.0.0/8 -j DROP")
    assert chain[-1] == "-A AVA-EGRESS -j RETURN"
    assert sh("iptables", "-S", "AVA-EGRESS-IN").splitlines()[-1] == "-A AVA-EGRESS-IN -j DROP"
    if os.path.exists("/proc/net/if_inet6"):
        assert "-A FORWARD -i ava-egress0 -j AVA-EGRESS" in sh("ip6tables", "-S", "FORWARD")
        assert "-A AVA-EGRESS -j DROP" in sh("ip6tables", "-S", "AVA-EGRESS")
