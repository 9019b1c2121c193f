"""The secrets vault: AES-256-GCM under keys derived (HKDF-SHA256) from AVA_SECRET_KEY.

Each value is sealed with a fresh 96-bit nonce and `tenant_id|name` as associated data, so a
ciphertext copied to another tenant or name fails to decrypt. Beside each value the store
keeps its key version: the id of the master key that sealed it (a fingerprint, derived with
HKDF under a different label, so it reveals nothing about the key). A keyring (`AVA_SECRET_KEY`
= `NEW,OLD`) decrypts under any of its keys and always encrypts under the first one; `ava
secrets rotate-key` re-seals every value (the tenants' secrets and their webhook signing
secrets) under the new key (see README.md, "Rotating the key without downtime").

Errors (from errors.py): VaultError (a value cannot be decrypted: unknown key version, or
tampered); MissingSecret and SecretUnreadable for a job's secrets that are unset or undecryptable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ava_platform import log
from ava_platform.errors import MissingSecret, SecretUnreadable, VaultError
from ava_platform.store.secrets import SealedSecret, SecretStore

NONCE_BYTES = 12
_ENC_INFO = b"ava-secrets-v1 aes-256-gcm"
_ID_INFO = b"ava-secrets-v1 key-id"


def _hkdf(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def key_id(master: bytes) -> str:
    """The key version stored beside each value: a fingerprint of the master key."""
    return "k" + _hkdf(master, _ID_INFO, 8).hex()


def _aad(tenant_id: str, name: str) -> bytes:
    # neither part may contain "|" (tenant ids and env names), so the binding is unambiguous
    return f"{tenant_id}|{name}".encode()


class Keyring:
    def __init__(self, masters: Sequence[bytes]) -> None:
        if not masters:
            raise ValueError("a keyring needs at least one key")
        self._ciphers = {key_id(m): AESGCM(_hkdf(m, _ENC_INFO, 32)) for m in masters}
        self.current = key_id(masters[0])

    @property
    def versions(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, tenant_id: str, name: str, value: str) -> SealedSecret:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self.current].encrypt(
            nonce, value.encode(), _aad(tenant_id, name)
        )
        return SealedSecret(
            tenant_id=tenant_id,
            name=name,
            ciphertext=ciphertext,
            nonce=nonce,
            key_version=self.current,
        )

    def open(self, sealed: SealedSecret) -> str:
        cipher = self._ciphers.get(sealed.key_version)
        if cipher is None:
            raise VaultError(
                f"secret {sealed.name} is sealed under unknown key {sealed.key_version}"
            )
        try:
            plain = cipher.decrypt(
                sealed.nonce, sealed.ciphertext, _aad(sealed.tenant_id, sealed.name)
            )
        except InvalidTag:
            raise VaultError(f"secret {sealed.name} failed authentication") from None
        return plain.decode()


class VaultSecrets:
    """The SecretSource the scheduler uses: decrypted values for one job, or MissingSecret."""

    def __init__(self, store: SecretStore, keyring: Keyring) -> None:
        self._store = store
        self._keyring = keyring

    async def resolve(self, tenant_id: str, names: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}  # no read of the store on a job's critical path for nothing
        sealed = {s.name: s for s in await self._store.get_many(tenant_id, wanted)}
        missing = [n for n in wanted if n not in sealed]
        if missing:
            raise MissingSecret(tenant_id, missing)
        values: dict[str, str] = {}
        unreadable: list[str] = []
        for name in wanted:
            try:
                values[name] = self._keyring.open(sealed[name])
            except VaultError:
                unreadable.append(name)
        if unreadable:
            raise SecretUnreadable(tenant_id, unreadable)
        for value in values.values():
            log.register_secret(value)  # never in the platform's own logs
        return values


class SealedRows(Protocol):
    """A table of sealed values `rotate` walks: the tenants' secrets (SecretStore) and the
    tenants' webhook signing secrets (WebhookStore)."""

    async def not_under(
        self, key_version: str, limit: int, *, after: tuple[str, str] = ("", "")
    ) -> list[SealedSecret]: ...

    async def reseal(self, old: SealedSecret, new: SealedSecret) -> bool: ...

    async def count_by_key_version(self) -> dict[str, int]: ...


class Rotation(NamedTuple):
    resealed: int  # values now sealed under the new key
    changed: int  # values replaced meanwhile (a PUT): left as written; run again to cover them


async def rotate(store: SealedRows, keyring: Keyring, *, batch: int = 200) -> Rotation:
    """Re-seals every value not under `keyring.current` in one pass over the table. Each row is
    swapped on its own (compare-and-swap), so a server keeps serving throughout, and a value
    PUT meanwhile is never overwritten. A value no key of `keyring` opens stops the rotation
    (VaultError naming it) before it is touched."""
    resealed = changed = 0
    after = ("", "")
    while True:
        rows = await store.not_under(keyring.current, batch, after=after)
        if not rows:
            return Rotation(resealed, changed)
        for row in rows:
            value = keyring.open(row)
            if await store.reseal(row, keyring.seal(row.tenant_id, row.name, value)):
                resealed += 1
            else:
                changed += 1
        after = (rows[-1].tenant_id, rows[-1].name)
