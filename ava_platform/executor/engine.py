"""The Docker engine, as every adapter of the executor reaches it: one client factory, and one
reader of an image build's output (the engine's JSON stream -> whole log lines, and the error
that ends a failed build)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import docker
from docker.constants import DEFAULT_TIMEOUT_SECONDS

API_VERSION = "1.41"  # engine 20.10+; newer engines still accept it
NEGOTIATE = "auto"  # the API version the engine itself offers
LineSink = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def engine_client(
    base_url: str | None = None,
    *,
    version: str = API_VERSION,
    timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
) -> Any:
    """A `docker.DockerClient` on `base_url`, else on the environment's engine ($DOCKER_HOST);
    its low-level API client is `.api`."""
    if base_url:
        return docker.DockerClient(base_url=base_url, version=version, timeout=timeout_s)
    return docker.from_env(version=version, timeout=timeout_s)


def _plain(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "")


def emit_lines(text: str, sink: LineSink) -> None:
    """Every non-blank line of `text`, right-stripped, to `sink`."""
    for line in text.split("\n"):
        if line.strip():
            sink(line.rstrip())


def read_build_output(chunks: Iterable[dict[str, Any]], sink: LineSink) -> str | None:
    """Streams a build's decoded output to `sink` as whole lines (the engine sends text in
    arbitrary pieces; terminal escapes dropped). Returns the engine's error message when the
    build failed (stripped; the stream is not read further), else None."""
    pending = ""
    for chunk in chunks:
        if "error" in chunk:
            emit_lines(pending, sink)
            return _plain(str(chunk["error"])).strip()
        pending += _plain(str(chunk.get("stream", "")))
        *lines, pending = pending.split("\n")
        emit_lines("\n".join(lines), sink)
    emit_lines(pending, sink)
    return None
