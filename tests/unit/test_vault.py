"""The secrets vault: AES-GCM round trip, tamper and copy refusal, key rotation (store and CLI),
the SecretSource the scheduler uses, redaction of every encoding and of split writes, and the
secrets API's role table."""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from ava_platform.clock import ManualClock
from ava_platform.config import load_settings
from ava_platform.errors import MissingSecret, SecretUnreadable, VaultError
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.models import Role, WorkerCreate
from ava_platform.scheduler.output import OutputCollector
from ava_platform.scheduler.redact import Redactor
from ava_platform.service.auth import Principal
from ava_platform.service.vault import Keyring, VaultSecrets, key_id
from ava_platform.store.database import Database as StoreDatabase
from ava_platform.store.db import Database
from ava_platform.store.secrets import SecretStore
from ava_platform.wiring import Platform
from tests.support import server_env

KEY_A = b"a" * 32
KEY_B = b"b" * 32


def b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


# -- crypto ---------------------------------------------------------------------------------


def test_round_trip_and_fresh_nonce_per_seal() -> None:
    ring = Keyring([KEY_A])
    one = ring.seal("ten_a", "TOKEN", "s3cret-value")
    two = ring.seal("ten_a", "TOKEN", "s3cret-value")
    assert ring.open(one) == ring.open(two) == "s3cret-value"
    assert one.nonce != two.nonce and one.ciphertext != two.ciphertext
    assert b"s3cret-value" not in one.ciphertext
    assert one.key_version == key_id(KEY_A) and key_id(KEY_A) != key_id(KEY_B)


def test_tampered_ciphertext_or_nonce_is_refused() -> None:
    ring = Keyring([KEY_A])
    sealed = ring.seal("ten_a", "TOKEN", "s3cret-value")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(VaultError):
        ring.open(msgspec.structs.replace(sealed, ciphertext=flipped))
    with pytest.raises(VaultError):
        ring.open(msgspec.structs.replace(sealed, nonce=os.urandom(12)))


@pytest.mark.parametrize(("tenant", "name"), [("ten_b", "TOKEN"), ("ten_a", "OTHER")])
def test_ciphertext_copied_to_another_tenant_or_name_does_not_decrypt(
    tenant: str, name: str
) -> None:
    ring = Keyring([KEY_A])
    sealed = ring.seal("ten_a", "TOKEN", "s3cret-value")
    with pytest.raises(VaultError):
        ring.open(msgspec.structs.replace(sealed, tenant_id=tenant, name=name))


def test_unknown_key_version_and_wrong_key_are_refused() -> None:
    sealed = Keyring([KEY_A]).seal("ten_a", "TOKEN", "s3cret-value")
    with pytest.raises(VaultError, match="unknown key"):
        Keyring([KEY_B]).open(sealed)
    forged = msgspec.structs.replace(sealed, key_version=key_id(KEY_B))
    with pytest.raises(VaultError, match="authentication"):
        Keyring([KEY_B]).open(forged)


def test_keyring_decrypts_under_every_key_and_encrypts_under_the_first() -> None:
    old = Keyring([KEY_A]).seal("ten_a", "TOKEN", "old-value")
    ring = Keyring([KEY_B, KEY_A])
    assert ring.open(old) == "old-value"
    assert ring.seal("ten_a", "TOKEN", "x" * 8).key_version == key_id(KEY_B)


def test_settings_accept_a_keyring() -> None:
    env = server_env(Path("/tmp/unused.db"), AVA_SECRET_KEY=f"{b64(KEY_B)},{b64(KEY_A)}")
    settings = load_settings(env)
    assert settings.secret_key == KEY_B and settings.previous_secret_keys == (KEY_A,)


# -- the store, the SecretSource, rotation --------------------------------------------------


@pytest.fixture
def store(store_db: StoreDatabase) -> SecretStore:
    return SecretStore(store_db)


async def test_store_never_holds_plaintext_and_source_resolves(
    store: SecretStore, store_db: StoreDatabase, tmp_path: Path
) -> None:
    ring = Keyring([KEY_A])
    await store.put(ring.seal("ten_a", "TOKEN", "plain-text-value"), "2026-01-01T00:00:00Z")
    rows = await store_db.fetchall("SELECT * FROM secrets")
    assert rows and all(b"plain-text-value" not in repr(tuple(r)).encode() for r in rows)
    if (tmp_path / "ava.db").exists():  # SQLite: not in the file either
        assert b"plain-text-value" not in (tmp_path / "ava.db").read_bytes()
    source = VaultSecrets(store, ring)
    assert await source.resolve("ten_a", ["TOKEN"]) == {"TOKEN": "plain-text-value"}
    with pytest.raises(MissingSecret) as missing:
        await source.resolve("ten_a", ["TOKEN", "NOPE"])
    assert missing.value.names == ["NOPE"]
    with pytest.raises(MissingSecret):  # per tenant
        await source.resolve("ten_b", ["TOKEN"])
    with pytest.raises(SecretUnreadable):
        await VaultSecrets(store, Keyring([KEY_B])).resolve("ten_a", ["TOKEN"])


async def test_rotation_reseals_everything_and_keeps_values(store: SecretStore) -> None:
    from ava_platform.service.vault import rotate

    old = Keyring([KEY_A])
    for i in range(5):
        await store.put(old.seal(f"ten_{i % 2}", f"S{i}", f"value-{i}"), "2026-01-01T00:00:00Z")
    result = await rotate(store, Keyring([KEY_B, KEY_A]), batch=2)
    assert result.resealed == 5 and result.changed == 0
    assert await store.count_by_key_version() == {key_id(KEY_B): 5}
    new_only = VaultSecrets(store, Keyring([KEY_B]))
    assert await new_only.resolve("ten_0", ["S0", "S2", "S4"]) == {
        "S0": "value-0",
        "S2": "value-2",
        "S4": "value-4",
    }
    assert (await rotate(store, Keyring([KEY_B]))).resealed == 0  # idempotent


async def test_rotation_never_overwrites_a_value_put_meanwhile(store: SecretStore) -> None:
    old, new = Keyring([KEY_A]), Keyring([KEY_B, KEY_A])
    await store.put(old.seal("ten_a", "S", "before"), "t0")
    stale = (await store.not_under(new.current, 10))[0]
    await store.put(old.seal("ten_a", "S", "after!"), "t1")  # a PUT between read and swap
    assert not await store.reseal(stale, new.seal("ten_a", "S", "before"))
    assert await VaultSecrets(store, new).resolve("ten_a", ["S"]) == {"S": "after!"}


def test_cli_rotate_key(tmp_path: Path) -> None:
    import asyncio

    from ava_platform.cli import app

    async def with_store(fn: Callable[[SecretStore], Any]) -> Any:
        db = Database(tmp_path / "ava.db")
        await db.open()
        try:
            return await fn(SecretStore(db))
        finally:
            await db.close()

    asyncio.run(
        with_store(lambda st: st.put(Keyring([KEY_A]).seal("ten_a", "S", "cli-value"), "t0"))
    )
    env = {"AVA_SECRET_KEY": b64(KEY_A), "AVA_NEW_SECRET_KEY": b64(KEY_B)}
    db = str(tmp_path / "ava.db")
    result = CliRunner().invoke(app, ["secrets", "rotate-key", "--db", db], env=env)
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 secret(s)" in result.output
    assert "cli-value" not in result.output
    counts = asyncio.run(with_store(lambda st: st.count_by_key_version()))
    assert counts == {key_id(KEY_B): 1}
    status = CliRunner().invoke(
        app, ["secrets", "key-status", "--db", db], env={"AVA_SECRET_KEY": b64(KEY_B)}
    )
    assert f"{key_id(KEY_B)}\t1\tcurrent" in status.output
    # the old key alone no longer opens anything: rotating "back" without it fails cleanly
    again = CliRunner().invoke(
        app,
        ["secrets", "rotate-key", "--db", db],
        env={"AVA_SECRET_KEY": b64(KEY_A), "AVA_NEW_SECRET_KEY": b64(KEY_A)},
    )
    assert again.exit_code == 1 and "unknown key" in again.output


# -- redaction --------------------------------------------------------------------------------

SECRET = "p@ss word/+?=&:é-1234"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode(),
        base64.b64encode(SECRET.encode()).decode().rstrip("="),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
    ],
)
def test_redactor_masks_each_encoding(form: str) -> None:
    line = Redactor([SECRET])(f"token={form};")
    assert line == "token=***;"


def test_a_value_split_across_two_writes_is_redacted() -> None:
    collector = OutputCollector("0" * 32, budget_bytes=1 << 20, redactor=Redactor([SECRET]))
    half = len(SECRET) // 2
    collector.feed("stdout", f"before {SECRET[:half]}".encode())
    collector.feed("stdout", f"{SECRET[half:]} after\n".encode())
    encoded = base64.b64encode(SECRET.encode())
    collector.feed("stderr", b"b64 " + encoded[:5])
    collector.feed("stderr", encoded[5:] + b"\n")
    collector.close()
    lines = [line for _, _, line in collector.drain()]
    assert lines == ["before *** after", "b64 ***"]


# -- the platform: missing secret, API roles ----------------------------------------------------


async def test_missing_secret_fails_at_once_without_a_container(tmp_path: Path) -> None:
    settings = load_settings(server_env(tmp_path / "ava.db"))
    executor = FakeExecutor()
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    platform = Platform(
        settings, clock=clock, executor=executor, run_scheduler=False, builder=FakeImageBuilder()
    )
    await platform.start()
    try:
        who = Principal("ten_a", "usr", Role.ADMIN)
        body = WorkerCreate(name="w", runtime="python", source_code="x", secrets=["A", "B_KEY"])  # type: ignore[arg-type]
        worker = await platform.workers.create(who, body)
        await platform.secret_service.put(who, "A", "value-a")
        job, _ = await platform.jobs.trigger(who, worker.id, {})
        claimed = await platform.job_store.claim_next(
            now="2027-01-01T00:00:00Z", owner="t", lease_until="2027-01-01T00:01:00Z", max_running=4
        )
        assert claimed is not None
        await platform.runner.run(claimed, __import__("asyncio").Event())
        done = await platform.jobs.get(who, job.id)
        assert done.status.value == "failed"
        assert done.error is not None and done.error.type == "missing_secret"
        assert "B_KEY" in done.error.message and "A," not in done.error.message
        assert executor.runs == []  # no container
    finally:
        await platform.stop()


def test_secrets_api_role_table(
    api: httpx.Client, server_url: str, tenant_headers: Callable[..., dict[str, str]]
) -> None:
    tenant = api.headers["x-tenant-id"]
    created = api.put("/secrets/API_TOKEN", json={"value": "first-value"})
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"name", "created_at", "updated_at"}
    replaced = api.put("/secrets/API_TOKEN", json={"value": "second-value"})
    assert replaced.status_code == 200
    assert replaced.json()["created_at"] == created.json()["created_at"]
    listed = api.get("/secrets")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["data"]] == ["API_TOKEN"]
    assert "value" not in listed.text and "second-value" not in listed.text
    base = f"{server_url}/v1/ava/secrets"
    for role, put_status, list_status, delete_status in [
        ("tenant-system-admin", 200, 200, None),
        ("tenant-developer", 403, 200, 403),
        ("tenant-operator", 403, 403, 403),
        ("tenant-viewer", 403, 403, 403),
    ]:
        h = tenant_headers(tenant=tenant, role=role)
        assert (
            httpx.put(f"{base}/API_TOKEN", json={"value": "v-1234"}, headers=h).status_code
            == put_status
        )
        assert httpx.get(base, headers=h).status_code == list_status
        if delete_status:
            assert httpx.delete(f"{base}/API_TOKEN", headers=h).status_code == delete_status
    other = httpx.get(base, headers=tenant_headers()).json()
    assert other["data"] == []  # per tenant
    assert httpx.delete(f"{base}/API_TOKEN", headers=tenant_headers()).status_code == 404
    assert api.delete("/secrets/API_TOKEN").status_code == 204
    assert api.delete("/secrets/API_TOKEN").status_code == 404
    assert api.get("/secrets").json()["data"] == []


def test_secrets_api_validation(api: httpx.Client) -> None:
    assert api.put("/secrets/1BAD", json={"value": "v-1234"}).status_code == 422
    assert api.put("/secrets/AVA_X", json={"value": "v-1234"}).status_code == 422
    assert api.put("/secrets/OK", json={"value": "abc"}).status_code == 422  # too short to redact
    assert api.put("/secrets/OK", json={"value": "v-1234", "extra": 1}).status_code == 422
    assert (
        api.put(
            "/secrets/OK", content=b"v-1234", headers={"content-type": "text/plain"}
        ).status_code
        == 415
    )
