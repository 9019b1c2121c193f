"""Where a swarm task with `network: egress` may go. The local guard (executor/egress.py)
installs its firewall on this machine only; a task lands on any node, whose bridge nothing
here can firewall. So egress tasks are refused until the operator names, in
AVA_SWARM_EGRESS_NETWORK, a swarm-scoped network they firewalled on every node (README: The
swarm executor), or `bridge`: each node's default bridge, accepted as the operator left it.
"""

from __future__ import annotations

import threading
from typing import Any

from ava_platform.errors import ExecutorError
from ava_platform.executor.egress import EgressReadiness, EgressStatus
from ava_platform.executor.engine import engine_client

NODE_BRIDGE = "bridge"  # no attachment: the node's default bridge, unfirewalled by AVA
UNSET_REASON = (
    "the swarm executor cannot install the egress firewall on the swarm's nodes; "
    "set AVA_SWARM_EGRESS_NETWORK to a swarm network you firewalled on every node "
    "(README: The swarm executor)"
)


class SwarmEgress(EgressReadiness):
    """`prepare` checks the named network once per process (again while it is not ready);
    `network_id` is what an egress task attaches to."""

    def __init__(self, network: str | None, base_url: str | None = None, client: Any = None):
        self._network = network
        self._base_url = base_url
        self._client = client
        self._lock = threading.Lock()
        self._network_id: str | None = None

    def _ready_fields(self) -> dict[str, str]:
        return {"swarm_network": self._network or ""}

    def network_id(self) -> str | None:
        """The network an egress task joins (None: no attachment, the node's bridge); raises
        when egress is refused, so a job queued before a restart never runs unprotected."""
        status = self.prepare()
        if not status.ready:
            raise ExecutorError(
                f"egress jobs are refused: {status.reason}", code="egress_unavailable"
            )
        return self._network_id

    def _prepare(self) -> EgressStatus:
        if not self._network:
            return EgressStatus(False, UNSET_REASON)
        if self._network == NODE_BRIDGE:
            return EgressStatus(True)
        try:
            api = self._client or engine_client(self._base_url).api
            found = api.inspect_network(self._network)
        except Exception as exc:
            return EgressStatus(
                False, f"AVA_SWARM_EGRESS_NETWORK={self._network}: no such network ({exc})"
            )
        if found.get("Scope") != "swarm":
            return EgressStatus(
                False,
                f"AVA_SWARM_EGRESS_NETWORK={self._network} is a {found.get('Scope')}-scoped "
                "network: a service can join only swarm-scoped ones",
            )
        self._network_id = str(found["Id"])
        return EgressStatus(True)
