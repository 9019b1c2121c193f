"""A real server whose containers are replaced by a scripted executor: fast, no Docker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ava_platform.api.app import create_app
from ava_platform.config import load_settings
from ava_platform.executor.base import RunSpec
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.wiring import Platform
from tests.support import app_server, assert_documents_current, server_env


def talking_script(
    spec: RunSpec, envelope: dict[str, object]
) -> tuple[list[tuple[str, bytes]], int]:
    """Two log lines, then the input as the result; input {"fail": true} fails the attempt."""
    nonce = envelope["nonce"]
    data = envelope.get("input")
    if isinstance(data, dict) and (data.get("fail") or data.get("ref") == "bad"):
        frame = {"ok": False, "error": {"type": "ValueError", "message": "boom"}}
    else:
        frame = {"ok": True, "result": data}
    out = f"hello\nworld\nAVA-RESULT-{nonce} {json.dumps(frame)}\n".encode()
    return [("stdout", out)], 0


@contextmanager
def scripted_server(db_path: Path, delay_s: float = 0.3, **env: str) -> Iterator[str]:
    """The real app on a real socket, with containers replaced by a scripted executor."""
    settings = load_settings(server_env(db_path, AVA_POLL_INTERVAL_S="0.05", **env))
    platform = Platform(
        settings, executor=FakeExecutor(talking_script, delay_s=delay_s), builder=FakeImageBuilder()
    )
    app = create_app(platform, internal_secret=settings.internal_secret)
    with app_server(app) as url:
        yield url
    assert_documents_current(db_path)
