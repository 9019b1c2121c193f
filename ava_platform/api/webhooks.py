"""Webhook routes: the tenant's signing secret (admin roles), its rotation, and a job's
delivery log."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.params import FromPath

from ava_platform.api.deps import Req, caller, services
from ava_platform.api.openapi import route
from ava_platform.models import DeliveryList, WebhookSecret
from ava_platform.service.auth import Permission


class WebhookSecretController(Controller):
    path = "/webhook-secret"
    tags = ["webhooks"]  # noqa: RUF012

    @get(
        "/",
        summary="The tenant's webhook signing secret (created on first use)",
        **route(Permission.WEBHOOK_SECRET),
    )
    async def get_secret(self, request: Req) -> WebhookSecret:
        principal = caller(request)
        webhook_secrets = services(request).webhook_secrets
        return WebhookSecret(await webhook_secrets.get(principal))

    @post(
        "/rotate",
        summary="Replace the signing secret; deliveries from now on use the new one",
        status_code=200,
        **route(Permission.WEBHOOK_SECRET),
    )
    async def rotate_secret(self, request: Req) -> WebhookSecret:
        principal = caller(request)
        webhook_secrets = services(request).webhook_secrets
        return WebhookSecret(await webhook_secrets.rotate(principal))


class DeliveriesController(Controller):
    path = "/jobs/{job_id:str}/deliveries"
    tags = ["webhooks"]  # noqa: RUF012

    @get(
        "/", summary="A job's webhook deliveries and their attempts", **route(Permission.READ, 404)
    )
    async def list_deliveries(self, request: Req, job_id: FromPath[str]) -> DeliveryList:
        principal = caller(request)
        deliveries = services(request).deliveries
        return DeliveryList(await deliveries.for_job(principal, job_id))
