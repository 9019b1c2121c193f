"""`ava secrets rotate-key` re-seals the tenants' webhook signing secrets too: after a rotation
and a restart on the new key alone, `GET /webhook-secret` still answers the same secret and a
finished job's delivery is signed with it (real server, real engine, both store backends)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ava_platform.cli import app
from tests.integration import sources
from tests.integration.conftest import Ava
from tests.support import SECRET_KEY, WebhookReceiver, headers, thread_server, webhook_receiver

pytestmark = pytest.mark.docker

NEW_KEY = base64.urlsafe_b64encode(b"n" * 32).decode()
ENV = {"AVA_WEBHOOK_ALLOW_PRIVATE": "1"}  # the receiver listens on loopback


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[WebhookReceiver]]]:
    with webhook_receiver([]) as served:
        yield served


def _ava(url: str, tenant: str) -> Ava:
    return Ava(httpx.Client(base_url=f"{url}/v1/ava", headers=headers(tenant), timeout=60))


def _rotate_key(db_path: Path, database_env: dict[str, str]) -> str:
    """The operator's command, on the server's database, from the old key to NEW_KEY."""
    argv = ["secrets", "rotate-key"] + ([] if database_env else ["--db", str(db_path)])
    env = {"AVA_SECRET_KEY": SECRET_KEY, "AVA_NEW_SECRET_KEY": NEW_KEY, **database_env}
    result = CliRunner().invoke(app, argv, env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_rotate_key_keeps_webhooks_signed(
    runtime_images: list[str],
    db_path: Path,
    database_env: dict[str, str],
    receiver: tuple[str, Any],
) -> None:
    hook, handler = receiver
    tenant = "ten_rotation"
    with thread_server(db_path, **ENV, **database_env) as url:
        before = _ava(url, tenant).client.get("/webhook-secret")
        assert before.status_code == 200, before.text
        secret = before.json()["secret"]

    assert "re-encrypted 1 secret(s)" in _rotate_key(db_path, database_env)

    # the old key is gone: only a re-sealed signing secret still opens
    with thread_server(db_path, AVA_SECRET_KEY=NEW_KEY, **ENV, **database_env) as url:
        ava = _ava(url, tenant)
        after = ava.client.get("/webhook-secret")
        assert after.status_code == 200, after.text
        assert after.json()["secret"] == secret
        worker = ava.worker("shell", sources.SHELL_ECHO, network="none", webhook_url=hook)
        job = ava.run(worker["id"], {"n": 1})
        assert job["status"] == "succeeded", job
        deadline = time.monotonic() + 30
        while not handler.seen and time.monotonic() < deadline:
            time.sleep(0.1)
    assert handler.seen, "the finished job was delivered"
    sent, body = handler.seen[0]
    t, v1 = (part.split("=", 1)[1] for part in sent["AVA-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)
    assert httpx.Response(200, content=body).json()["id"] == job["id"]
