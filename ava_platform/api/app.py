"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router, asgi

from ava_platform.api import docs, jobs, quotas, schedules, secrets, ui, versions, webhooks, workers
from ava_platform.api.auth import authenticate_connection, authorize
from ava_platform.api.errors import EXCEPTION_HANDLERS
from ava_platform.api.health import healthz, readyz
from ava_platform.api.metrics import RequestMetrics, metrics_endpoint
from ava_platform.mcp.server import McpEndpoint
from ava_platform.mcp.tools import WorkerTools
from ava_platform.service.container import Services

MAX_JSON_BODY = 2 * 1024 * 1024


def create_app(services: Services, *, internal_secret: str, serve_api: bool = True) -> Litestar:
    """The app; without `serve_api` (a scheduler-only process) only /healthz, /readyz and
    /metrics answer."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    mcp = McpEndpoint(WorkerTools(services.workers, services.jobs), max_body_bytes=MAX_JSON_BODY)
    services.workers.on_change(mcp.workers_changed)

    # an ASGI route: the router's before_request hook does not run for it, this guard does
    @asgi("/mcp", include_in_schema=False, copy_scope=True, guards=[authenticate_connection])
    async def mcp_endpoint(scope: Any, receive: Any, send: Any) -> None:
        """MCP over streamable HTTP (README: Workers as MCP tools)."""
        await mcp.handle(scope, receive, send)

    api = Router(
        path="/v1/ava",
        route_handlers=[
            workers.WorkersController,
            jobs.JobsController,
            secrets.SecretsController,
            versions.DeployController,
            versions.VersionsController,
            schedules.SchedulesController,
            mcp_endpoint,
            quotas.QuotasController,
            webhooks.WebhookSecretController,
            webhooks.DeliveriesController,
        ],
        before_request=authorize,
        security=docs.SECURITY,
    )
    app = Litestar(
        route_handlers=[
            *([api, docs.docs_assets_router(), ui.router()] if serve_api else []),
            healthz,
            readyz,
            metrics_endpoint,
        ],
        middleware=[RequestMetrics(services.metrics), ui.PageHeaders],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=docs.OPENAPI_CONFIG,
        lifespan=[lifespan, lambda _app: mcp.lifespan()],
        request_max_body_size=MAX_JSON_BODY,
        debug=False,
    )
    docs.add_examples(app.openapi_schema)
    app.state.internal_secret = internal_secret
    app.state.services = services
    return app
