"""Completion webhooks: each tenant's signing secret (sealed in the vault, created on first
use, rotated on request) and the signature every delivery carries:

    AVA-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>" under the secret>
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random

from ava_platform.clock import Clock, iso
from ava_platform.models import DeliveryAttemptInfo, DeliveryInfo
from ava_platform.service.auth import Permission, Principal
from ava_platform.service.jobs import JobService
from ava_platform.service.vault import Keyring
from ava_platform.store.webhooks import WEBHOOK_SECRET_NAME, WebhookStore

SIGNATURE_HEADER = "AVA-Signature"


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _new_secret() -> str:
    return "whsec_" + random.token_urlsafe(32)


class WebhookSecrets:
    def __init__(self, store: WebhookStore, keyring: Keyring, clock: Clock) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock

    async def get(self, who: Principal) -> str:
        who.require(Permission.WEBHOOK_SECRET)
        return await self.for_tenant(who.tenant_id)

    async def rotate(self, who: Principal) -> str:
        """A new secret at once: deliveries from now on are signed with it."""
        who.require(Permission.WEBHOOK_SECRET)
        return await self._put(who.tenant_id, replace=True)

    async def for_tenant(self, tenant_id: str) -> str:
        """The tenant's secret, created on first use (by a read or by a first delivery)."""
        sealed = await self._store.secret(tenant_id)
        if sealed is None:
            await self._put(tenant_id, replace=False)
            sealed = await self._store.secret(tenant_id)
            assert sealed is not None  # just stored (by us or by a concurrent first use)
        return self._keyring.open(sealed)

    async def _put(self, tenant_id: str, *, replace: bool) -> str:
        value = _new_secret()
        sealed = self._keyring.seal(tenant_id, WEBHOOK_SECRET_NAME, value)
        await self._store.put_secret(sealed, iso(self._clock.now()), replace=replace)
        return value


class DeliveryLog:
    """A job's webhook deliveries and each attempt, for its tenant's readers."""

    def __init__(self, store: WebhookStore, jobs: JobService) -> None:
        self._store = store
        self._jobs = jobs

    async def for_job(self, who: Principal, job_id: str) -> list[DeliveryInfo]:
        await self._jobs.get(who, job_id)  # 404 for an unknown or another tenant's job
        return [
            DeliveryInfo(
                id=d.id,
                job_id=d.job_id,
                url=d.url,
                status=d.status,
                attempts=[
                    DeliveryAttemptInfo(
                        number=a.number,
                        at=a.at,
                        response_status=a.status_code,
                        error=a.error,
                        duration_ms=a.duration_ms,
                    )
                    for a in tries
                ],
                next_attempt_at=d.next_attempt_at,
                created_at=d.created_at,
                delivered_at=d.delivered_at,
            )
            for d, tries in await self._store.for_job(who.tenant_id, job_id)
        ]
