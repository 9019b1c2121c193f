"""The network `egress` jobs run on: a platform-managed bridge with no inter-container traffic,
and firewall rules that let its containers reach public addresses and the engine's DNS
resolvers (port 53 only), never the host, the gateway, loopback, link-local (cloud metadata
included), private, shared or multicast ranges (README: Security model).

The rules live in chains of their own (`AVA-EGRESS` reached from `DOCKER-USER`, `AVA-EGRESS-IN`
reached from `INPUT`), each jump matching only this bridge's interface, so no other network on
the engine is touched. They are installed at start, idempotently and atomically
(`iptables-restore --noflush` replaces the chains' contents in one transaction). When they
cannot be installed the guard says why, and `egress` containers are refused: a job never runs
unprotected.
"""

from __future__ import annotations

import abc
import ipaddress
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors

from ava_platform.executor.engine import engine_client
from ava_platform.log import get_logger

log = get_logger("ava.executor.egress")

NETWORK = "ava-egress"
BRIDGE = "ava-egress0"  # the bridge's interface name: what every rule matches on
CHAIN = "AVA-EGRESS"  # forwarded traffic from the bridge (reached from DOCKER-USER)
CHAIN_IN = "AVA-EGRESS-IN"  # traffic from the bridge to the host itself (reached from INPUT)
# never reachable from a job, unless an operator allows a range on purpose
BLOCKED_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata included
    "172.16.0.0/12",  # private (Docker's own networks among them)
    "192.0.0.0/24",  # IETF protocol assignments
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast included
)
# inside the container: no IPv6 at all (the managed network has none; link-local fe80::
# would otherwise reach the bridge's neighbours)
CONTAINER_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}

Runner = Callable[[Sequence[str], str | None], str]


def host_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The IPv4 nameservers the engine forwards containers' DNS queries to (its embedded
    resolver sends them from the container's own namespace, so they cross the bridge)."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                addr = ipaddress.IPv4Address(parts[1])
            except ValueError:
                continue
            if not addr.is_loopback:
                out.append(str(addr))
    return out


def _dns_rules(chain: str, resolvers: Iterable[str], verdict: str) -> list[str]:
    return [
        f"-A {chain} -d {ip}/32 -p {proto} --dport 53 -j {verdict}"
        for ip in resolvers
        for proto in ("udp", "tcp")
    ]


def rules_v4(allow: Sequence[str], resolvers: Sequence[str]) -> str:
    """The `iptables-restore --noflush` input: both chains' whole contents."""
    lines = ["*filter", f":{CHAIN} - [0:0]", f":{CHAIN_IN} - [0:0]"]
    lines += [f"-A {CHAIN} -d {cidr} -j RETURN" for cidr in allow]
    lines += _dns_rules(CHAIN, resolvers, "RETURN")
    lines += [f"-A {CHAIN} -d {cidr} -j DROP" for cidr in BLOCKED_V4]
    lines += [f"-A {CHAIN} -j RETURN"]
    # the host, on any of its addresses (the gateway included): replies to what the host
    # opened, DNS to a resolver it hosts, nothing else
    lines += [f"-A {CHAIN_IN} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    lines += _dns_rules(CHAIN_IN, resolvers, "RETURN")
    lines += [f"-A {CHAIN_IN} -j DROP", "COMMIT", ""]
    return "\n".join(lines)


def rules_v6() -> str:
    """The managed network has no IPv6: every IPv6 packet from its bridge is dropped."""
    return "\n".join(["*filter", f":{CHAIN} - [0:0]", f"-A {CHAIN} -j DROP", "COMMIT", ""])


# (table chain, jump) pairs: each inserted first in its chain unless already there
JUMPS_V4 = (("DOCKER-USER", CHAIN), ("INPUT", CHAIN_IN))
JUMPS_V6 = (("FORWARD", CHAIN), ("INPUT", CHAIN))


def run_command(argv: Sequence[str], stdin: str | None) -> str:
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _has_ipv6() -> bool:
    return Path("/proc/net/if_inet6").exists()


@dataclass(frozen=True)
class EgressStatus:
    ready: bool
    reason: str = ""  # why egress jobs are refused, when not ready


class EgressReadiness(abc.ABC):
    """What egress jobs need, set up once per process by `prepare` (again while it is not
    ready, so a later attempt can succeed); `status` says whether they may run. Subclasses
    give `_prepare` and what to log when ready."""

    _lock: threading.Lock
    _status: EgressStatus | None = None

    @property
    def status(self) -> EgressStatus | None:
        """None until `prepare` ran."""
        return self._status

    def prepare(self) -> EgressStatus:
        """Blocking (engine calls, maybe iptables): run it on a thread. Never raises."""
        with self._lock:
            if self._status is None or not self._status.ready:
                self._status = self._prepare()
                if self._status.ready:
                    log.info("egress_ready", **self._ready_fields())
                else:
                    log.warning("egress_unavailable", reason=self._status.reason)
            return self._status

    @abc.abstractmethod
    def _prepare(self) -> EgressStatus: ...

    def _ready_fields(self) -> dict[str, str]:
        return {}


class EgressGuard(EgressReadiness):
    """Creates the managed network and installs its rules, once per process (`prepare`);
    `status` says whether egress containers may be created."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        allow_cidrs: Sequence[str] = (),
        run: Runner = run_command,
        client: Any = None,
    ) -> None:
        self._base_url = base_url
        self._allow = list(allow_cidrs)
        self._run = run
        self._client = client
        self._lock = threading.Lock()

    def _ready_fields(self) -> dict[str, str]:
        return {"network": NETWORK, "bridge": BRIDGE}

    def _prepare(self) -> EgressStatus:
        try:
            self._ensure_network()
        except Exception as exc:
            return EgressStatus(False, f"cannot create network {NETWORK}: {exc}")
        try:
            self._install("iptables", rules_v4(self._allow, host_resolvers()), JUMPS_V4)
        except Exception as exc:
            return EgressStatus(False, f"cannot install firewall rules: {exc}")
        if _has_ipv6():
            try:
                self._install("ip6tables", rules_v6(), JUMPS_V6)
            except Exception as exc:
                return EgressStatus(False, f"cannot install IPv6 firewall rules: {exc}")
        return EgressStatus(True)

    def _install(self, tool: str, rules: str, jumps: Iterable[tuple[str, str]]) -> None:
        if shutil.which(tool) is None or shutil.which(f"{tool}-restore") is None:
            raise RuntimeError(f"{tool} is not installed")
        if os.geteuid() != 0:
            raise RuntimeError(f"{tool} needs root (the platform runs as uid {os.geteuid()})")
        self._run([f"{tool}-restore", "--noflush", "-w", "10"], rules)
        for parent, chain in jumps:
            rule = [parent, "-i", BRIDGE, "-j", chain]
            try:
                self._run([tool, "-w", "10", "-C", *rule], None)
            except RuntimeError:
                self._run([tool, "-w", "10", "-I", *rule[:1], "1", *rule[1:]], None)

    def _ensure_network(self) -> None:
        api = self._client or engine_client(self._base_url).api
        try:
            found = api.inspect_network(NETWORK)
        except docker.errors.NotFound:
            found = None
        if found is not None:
            options = found.get("Options") or {}
            if (
                options.get("com.docker.network.bridge.enable_icc") != "false"
                or options.get("com.docker.network.bridge.name") != BRIDGE
            ):
                raise RuntimeError(
                    f"a network named {NETWORK} exists without the platform's options; remove it"
                )
            return
        try:
            api.create_network(
                NETWORK,
                driver="bridge",
                options={
                    "com.docker.network.bridge.enable_icc": "false",
                    "com.docker.network.bridge.name": BRIDGE,
                },
                enable_ipv6=False,
                labels={"ava.managed": "1"},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # created by another platform on this engine just now
                raise
