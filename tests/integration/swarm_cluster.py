"""A swarm for the tests, made on the test engine and left exactly as it was found.

`swarm_manager` makes the engine a single-node swarm manager if it is not in a swarm (and
leaves the swarm afterwards; an engine already in a swarm is used as it is and left in it).
`netns_worker` adds a second node: a second dockerd in its own network namespace, reached over
a veth pair, joined as a worker, with the images it needs loaded from the main engine; it is
stopped and its namespace, veth and data dir removed afterwards. The main engine's own
containers are never touched: the second dockerd has its own data root, exec root, socket,
pidfile and cgroup parent, no bridge and no iptables rules.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST_IP, NODE_IP, PREFIX = "10.251.37.1", "10.251.37.2", "30"
START_LIMIT_S = 40.0


def sh(*argv: str, check: bool = True, timeout: float = 120, **kw: object) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return str(proc.stdout)


def swarm_state(host: str | None = None) -> dict[str, object]:
    argv = ["docker", *(["-H", host] if host else []), "info", "--format", "{{json .Swarm}}"]
    return dict(json.loads(sh(*argv, timeout=30)))


class NodeUnavailable(RuntimeError):
    """The second node could not be made here (the reason is the message)."""


@dataclass
class Manager:
    joined: bool  # this fixture made the swarm (and leaves it)
    addr: str  # the manager's advertised address


@contextlib.contextmanager
def veth_pair(netns: str) -> Iterator[None]:
    """A network namespace reached from the host over a /30 veth pair (host side HOST_IP)."""
    host_end = f"avah{netns[-6:]}"
    sh("ip", "netns", "add", netns)
    try:
        sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "avan0")
        sh("ip", "link", "set", "avan0", "netns", netns)
        sh("ip", "addr", "add", f"{HOST_IP}/{PREFIX}", "dev", host_end)
        sh("ip", "link", "set", host_end, "up")
        for cmd in (
            ["ip", "addr", "add", f"{NODE_IP}/{PREFIX}", "dev", "avan0"],
            ["ip", "link", "set", "avan0", "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            sh("ip", "netns", "exec", netns, *cmd)
        yield
    finally:
        sh("ip", "link", "del", host_end, check=False)
        sh("ip", "netns", "del", netns, check=False)


@contextlib.contextmanager
def swarm_manager(advertise_addr: str | None = None) -> Iterator[Manager]:
    state = swarm_state()
    if state.get("LocalNodeState") == "active":
        if not state.get("ControlAvailable"):
            raise RuntimeError("the test engine is a swarm worker, not a manager")
        yield Manager(joined=False, addr=str(state.get("NodeAddr")))
        return
    argv = ["docker", "swarm", "init"]
    if advertise_addr:
        argv += ["--advertise-addr", advertise_addr, "--listen-addr", f"{advertise_addr}:2377"]
    else:
        argv += ["--advertise-addr", "127.0.0.1"]
    sh(*argv, timeout=60)
    try:
        yield Manager(joined=True, addr=advertise_addr or "127.0.0.1")
    finally:
        sh("docker", "swarm", "leave", "--force", check=False, timeout=60)


@dataclass
class Worker:
    host: str  # the second engine's socket, as `docker -H` takes it
    node_id: str  # its node in the swarm (same hostname as the manager: pin by id)


def _wait_socket(host: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the second dockerd exited: {log.read_text()[-2000:]}")
        probe = subprocess.run(
            ["docker", "-H", host, "version"], capture_output=True, timeout=10, check=False
        )
        if probe.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the second dockerd did not answer in {START_LIMIT_S:g}s")


def _stop(proc: subprocess.Popen[bytes], root: Path) -> None:
    """The node's dockerd, and the containerd it started (a killed dockerd leaves it)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    pidfile = root / "exec" / "containerd" / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def new_netns_name() -> str:
    return f"ava-node-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def netns_worker(manager: Manager, netns: str, images: list[str]) -> Iterator[Worker]:
    """A second node in `netns` (made by veth_pair), joined to `manager`'s swarm, which must
    advertise HOST_IP to be reachable from there."""
    root = Path(tempfile.mkdtemp(prefix="ava-node-"))
    proc: subprocess.Popen[bytes] | None = None
    node_id = ""
    try:
        try:
            proc = _start_dockerd(root, netns)
            host = f"unix://{root}/d.sock"
            _wait_socket(host, proc, root / "dockerd.log")
            _load_images(host, images)
            token = sh("docker", "swarm", "join-token", "-q", "worker").strip()
            sh("docker", "-H", host, "swarm", "join", "--token", token, f"{manager.addr}:2377")
            node_id = str(swarm_state(host)["NodeID"])
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            raise NodeUnavailable(str(exc)) from exc
        yield Worker(host=host, node_id=node_id)
    finally:
        if node_id:
            sh("docker", "node", "rm", "--force", node_id, check=False, timeout=60)
        if proc is not None:
            _stop(proc, root)
        _unmount(root)
        for cgroup in Path("/sys/fs/cgroup").glob(f"*/{netns}"):
            with contextlib.suppress(OSError):
                cgroup.rmdir()


def _start_dockerd(root: Path, netns: str) -> subprocess.Popen[bytes]:
    # the node's whole state on a tmpfs: removing it afterwards is one unmount, not seconds of
    # deleting image layers file by file
    sh("mount", "-t", "tmpfs", "-o", "size=4g,mode=0711", "tmpfs", str(root))
    # `ip netns exec` remounts /sys, which dockerd then cannot use: enter the netns only.
    # Paths are short: a unix socket's path is capped at 108 bytes.
    argv = [
        "nsenter",
        f"--net=/var/run/netns/{netns}",
        "dockerd",
        f"--data-root={root}/data",
        f"--exec-root={root}/exec",
        f"--pidfile={root}/d.pid",
        f"-H=unix://{root}/d.sock",
        f"--cgroup-parent=/{netns}",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--storage-driver=overlay2",
    ]
    with (root / "dockerd.log").open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _unmount(root: Path) -> None:
    """Unmounts the node's tmpfs and whatever the node left mounted under it."""
    if subprocess.run(["umount", "-R", str(root)], capture_output=True, check=False).returncode:
        subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        root.rmdir()


def _load_images(host: str, images: list[str]) -> None:
    """`docker save | docker -H … load`: no registry is needed between the two engines."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE)
    try:
        sh("docker", "-H", host, "load", stdin=save.stdout, timeout=300)
    finally:
        if save.stdout is not None:
            save.stdout.close()
        save.wait(timeout=60)


def netns_possible() -> str | None:
    """Why no second node can be made here, or None."""
    if os.geteuid() != 0:
        return "the second node needs root (network namespaces, a second dockerd)"
    for tool in ("ip", "nsenter", "dockerd"):
        if shutil.which(tool) is None:
            return f"the second node needs `{tool}`"
    return None
