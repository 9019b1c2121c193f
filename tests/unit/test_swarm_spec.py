"""The swarm executor's pure parts: the task template a service gets, the log stream's
demultiplexing across HTTP chunks, and the settings that pick the executor."""

from __future__ import annotations

import json

import pytest

from ava_platform.config import Settings, load_settings
from ava_platform.errors import ConfigError
from ava_platform.executor.base import RunSpec
from ava_platform.executor.services import service_name, task_template
from ava_platform.executor.swarm import demux
from tests.support import SECRET, SECRET_KEY

SPEC = RunSpec(
    job_id="job_01abc",
    tenant_id="ten_1",
    worker_id="wkr_1",
    attempt=2,
    image="ava/runtime-python:0.1.0",
    envelope=b'{"v":1,"env":{"API_TOKEN":"hunter2-very-secret"}}\n',
    memory_mb=128,
    cpus=0.5,
    network_enabled=False,
    timeout_s=30,
)


def test_the_task_template_carries_the_limits_and_hardening_and_no_envelope() -> None:
    secrets = [("sid", "ava-x-env")]
    template = task_template(SPEC, "sha256:abc", secrets, "net1", {"ava.job_id": "j"})
    assert "hunter2" not in json.dumps(template)
    container = template["ContainerSpec"]
    assert container["Image"] == "sha256:abc"
    assert container["User"] == "10001:10001"
    assert container["ReadOnly"] is True
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Env"] == ["AVA_ENVELOPE_FILE=/run/secrets/ava-x-env"]
    # the image's entrypoint (ava-seal, README: Security model) and CMD run as built
    assert not {"Command", "Args", "Privileges"} & set(container)
    assert container["Secrets"][0]["File"] == {
        "Name": "ava-x-env",
        "UID": "10001",
        "GID": "10001",
        "Mode": 0o400,
    }
    assert template["Resources"]["Limits"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 128 * 1024 * 1024,
        "Pids": 256,
    }
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["Networks"] == [{"Target": "net1"}]


def test_an_egress_task_joins_no_network() -> None:
    template = task_template(SPEC, "sha256:abc", [("sid", "n")], None, {})
    assert template["Networks"] == []


def test_an_envelope_in_several_secrets_is_named_in_order() -> None:
    secrets = [("s0", "ava-x-env"), ("s1", "ava-x-env-1"), ("s2", "ava-x-env-2")]
    container = task_template(SPEC, "sha256:abc", secrets, None, {})["ContainerSpec"]
    assert container["Env"] == [
        "AVA_ENVELOPE_FILE=/run/secrets/ava-x-env:/run/secrets/ava-x-env-1:/run/secrets/ava-x-env-2"
    ]
    assert [(s["SecretID"], s["File"]["Name"]) for s in container["Secrets"]] == [
        ("s0", "ava-x-env"),
        ("s1", "ava-x-env-1"),
        ("s2", "ava-x-env-2"),
    ]
    assert all(s["File"]["Mode"] == 0o400 for s in container["Secrets"])


def test_service_names_are_unique_per_attempt_and_valid() -> None:
    names = {service_name(SPEC) for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith("ava-job-01abc-2-") and "_" not in n for n in names)


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_frames_split_across_chunks_are_reassembled() -> None:
    raw = _frame(1, b"hello\n") + _frame(2, b"AVA-END-x\n") + _frame(1, b"AVA-RESULT-x {}\n")
    for size in (1, 3, 7, 64):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert list(demux(chunks)) == [
            (1, b"hello\n"),
            (2, b"AVA-END-x\n"),
            (1, b"AVA-RESULT-x {}\n"),
        ]


def test_a_truncated_frame_is_dropped_not_invented() -> None:
    raw = _frame(1, b"whole\n") + _frame(1, b"cut short")[:-3]
    assert list(demux([raw])) == [(1, b"whole\n")]


def _settings(**env: str) -> Settings:
    return load_settings({"AVA_INTERNAL_SECRET": SECRET, "AVA_SECRET_KEY": SECRET_KEY, **env})


def test_the_executor_is_local_unless_swarm_is_asked_for() -> None:
    assert _settings().executor == "local"
    swarm = _settings(AVA_EXECUTOR="swarm", AVA_SWARM_CONSTRAINTS="node.role==worker, a==b")
    assert swarm.executor == "swarm"
    assert swarm.swarm_constraints == ("node.role==worker", "a==b")


def test_an_unknown_executor_stops_the_server_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="AVA_EXECUTOR must be one of local, swarm"):
        _settings(AVA_EXECUTOR="kubernetes")
