"""The delivery loop: POSTs each finished job that names a webhook URL, signed, retried with
exponential backoff from the store (a restart resumes where it stopped: at least once).

Each attempt resolves and checks the URL again (DNS may have changed since it was set) and
connects to the address it checked, with the URL's host as Host and TLS server name, so a
rebinding DNS answer cannot send it elsewhere. Redirects are not followed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import httpx
import msgspec

from ava_platform.clock import Clock, iso
from ava_platform.config import Settings
from ava_platform.errors import AvaError
from ava_platform.log import get_logger
from ava_platform.service.webhook_urls import resolve
from ava_platform.service.webhooks import SIGNATURE_HEADER, WebhookSecrets, signature
from ava_platform.store.jobs import JobStore
from ava_platform.store.webhooks import Delivery, DeliveryAttempt, WebhookStore

log = get_logger("ava.webhooks")
POLL_S = 0.5
BATCH = 16
MAX_BACKOFF_S = 3600.0
USER_AGENT = "ava-webhooks/1"


class WebhookLoop:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        store: WebhookStore,
        jobs: JobStore,
        secrets: WebhookSecrets,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._store = store
        self._jobs = jobs
        self._secrets = secrets
        self._transport = transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            transport=self._transport,
            timeout=self._settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,  # a proxy would connect by name, undoing the pinned address
        )
        self._task = asyncio.create_task(self._loop(), name="ava-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self._store.due(iso(self._clock.now()), BATCH)
                await asyncio.gather(*(self._deliver(d) for d in due))
            except Exception as exc:
                log.error("webhook_loop_failed", error=str(exc))
                due = []
            if len(due) < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _deliver(self, delivery: Delivery) -> None:
        started = time.monotonic()
        code, error = await self._attempt(delivery)
        attempt = DeliveryAttempt(
            number=delivery.attempts + 1,
            at=iso(self._clock.now()),
            status_code=code,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        ok = code is not None and 200 <= code < 300
        retry = not ok and attempt.number < self._settings.webhook_max_attempts
        status = "delivered" if ok else ("pending" if retry else "failed")
        await self._store.record(
            delivery,
            attempt,
            status=status,
            next_attempt_at=self._next_at(attempt) if retry else None,
        )
        log.info(
            "webhook_attempt",
            job_id=delivery.job_id,
            delivery_id=delivery.id,
            attempt=attempt.number,
            status_code=code,
            outcome=status,
        )

    def _next_at(self, attempt: DeliveryAttempt) -> str:
        delay_s = min(
            MAX_BACKOFF_S, self._settings.webhook_retry_base_s * 2 ** (attempt.number - 1)
        )
        return iso(self._clock.now() + timedelta(seconds=delay_s))

    async def _attempt(self, delivery: Delivery) -> tuple[int | None, str | None]:
        """The receiver's status code, or None and why no answer came."""
        assert self._client is not None
        job = await self._jobs.get(delivery.tenant_id, delivery.job_id)
        if job is None:
            return None, "the job no longer exists"
        try:
            target = await resolve(delivery.url, allow_private=self._settings.webhook_allow_private)
            secret = await self._secrets.for_tenant(delivery.tenant_id)
        except AvaError as exc:
            return None, exc.message
        body = msgspec.json.encode(job)
        headers = {
            "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "AVA-Delivery": delivery.id,
            "AVA-Event": "job.finished",
            SIGNATURE_HEADER: signature(secret, body, int(time.time())),
        }
        try:
            response = await self._client.post(
                target.pinned_url(),
                content=body,
                headers=headers,
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return response.status_code, None if response.is_success else f"HTTP {response.status_code}"
