"""Which network a swarm egress task joins, and why it is refused when none was named: the
platform cannot firewall another node's bridge, so it never runs an egress task unprotected
unless the operator said where (README: The swarm executor)."""

from __future__ import annotations

from typing import Any

import pytest

from ava_platform.config import load_settings
from ava_platform.errors import ExecutorError
from ava_platform.executor.swarm_egress import SwarmEgress
from tests.support import SECRET, SECRET_KEY


class Engine:
    """The one call SwarmEgress makes: inspect_network, answered from a dict."""

    def __init__(self, networks: dict[str, dict[str, Any]]) -> None:
        self.networks = networks
        self.calls = 0

    def inspect_network(self, name: str) -> dict[str, Any]:
        self.calls += 1
        if name not in self.networks:
            raise LookupError(f"network {name} not found")
        return self.networks[name]


def refused(egress: SwarmEgress) -> str:
    with pytest.raises(ExecutorError) as caught:
        egress.network_id()
    assert caught.value.code == "egress_unavailable"
    return str(caught.value)


def test_unset_refuses_egress_and_says_which_setting_opens_it() -> None:
    egress = SwarmEgress(None, client=Engine({}))
    status = egress.prepare()
    assert not status.ready
    assert "AVA_SWARM_EGRESS_NETWORK" in status.reason
    assert "AVA_SWARM_EGRESS_NETWORK" in refused(egress)


def test_bridge_means_no_attachment_and_asks_the_engine_nothing() -> None:
    engine = Engine({})
    egress = SwarmEgress("bridge", client=engine)
    assert egress.prepare().ready
    assert egress.network_id() is None
    assert engine.calls == 0


def test_a_swarm_network_is_joined_by_its_id() -> None:
    engine = Engine({"fw-egress": {"Id": "n123", "Scope": "swarm"}})
    egress = SwarmEgress("fw-egress", client=engine)
    assert egress.network_id() == "n123"
    assert egress.network_id() == "n123"
    assert engine.calls == 1  # checked once while it is ready


def test_a_missing_or_local_network_is_refused_with_its_name() -> None:
    assert "no such network" in refused(SwarmEgress("gone", client=Engine({})))
    local = Engine({"lan": {"Id": "n9", "Scope": "local"}})
    assert "local-scoped" in refused(SwarmEgress("lan", client=local))


def test_a_network_made_after_a_refusal_is_found_on_the_next_job() -> None:
    engine = Engine({})
    egress = SwarmEgress("late", client=engine)
    assert not egress.prepare().ready
    engine.networks["late"] = {"Id": "n7", "Scope": "swarm"}
    assert egress.network_id() == "n7"


def test_the_setting_is_read_from_the_environment() -> None:
    base = {"AVA_INTERNAL_SECRET": SECRET, "AVA_SECRET_KEY": SECRET_KEY}
    assert load_settings(base).swarm_egress_network is None
    assert load_settings({**base, "AVA_SWARM_EGRESS_NETWORK": "  "}).swarm_egress_network is None
    named = load_settings({**base, "AVA_SWARM_EGRESS_NETWORK": " fw-egress "})
    assert named.swarm_egress_network == "fw-egress"
