"""Where the executor's engine calls go (executor/engine_api.py): the addresses a user gives in
AVA_DOCKER_HOST / DOCKER_HOST, and the clear refusal of those it cannot reach."""

from __future__ import annotations

import pytest

from ava_platform.errors import ExecutorError
from ava_platform.executor.engine_api import DEFAULT_SOCKET, Endpoint, EngineNotFound, refused


def test_the_local_socket_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert Endpoint(None).unix_path == DEFAULT_SOCKET
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other/docker.sock")
    assert Endpoint(None).unix_path == "/run/other/docker.sock"


@pytest.mark.parametrize(
    ("url", "unix_path", "address"),
    [
        ("unix:///tmp/engine/docker.sock", "/tmp/engine/docker.sock", None),
        ("tcp://127.0.0.1:2375", None, ("127.0.0.1", 2375)),
        ("http://localhost:12375", None, ("localhost", 12375)),
        ("tcp://10.0.0.5", None, ("10.0.0.5", 2375)),
    ],
)
def test_unix_and_plain_tcp_engines(
    url: str, unix_path: str | None, address: tuple[str, int] | None
) -> None:
    endpoint = Endpoint(url)
    assert (endpoint.unix_path, endpoint.address) == (unix_path, address)


@pytest.mark.parametrize("url", ["ssh://user@host", "https://host:2376", "npipe:////./pipe/x"])
def test_an_engine_it_cannot_reach_is_refused_by_name(url: str) -> None:
    with pytest.raises(ExecutorError, match="unix:// or plain tcp://"):
        Endpoint(url)


def test_the_engines_error_message_is_kept() -> None:
    err = refused(404, b'{"message":"No such container: abc"}')
    assert isinstance(err, EngineNotFound) and err.message == "No such container: abc"
    plain = refused(500, b"engine on fire\n")
    assert not isinstance(plain, EngineNotFound)
    assert (plain.status, plain.message) == (500, "engine on fire")
