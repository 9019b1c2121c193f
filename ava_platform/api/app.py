"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Router, asgi
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from ava_platform import __version__
from ava_platform.api import jobs, schedules, secrets, versions, workers
from ava_platform.api.auth import authenticate_connection, authorize, provide_principal
from ava_platform.api.errors import EXCEPTION_HANDLERS
from ava_platform.api.health import healthz, readyz
from ava_platform.api.metrics import RequestMetrics, metrics_endpoint
from ava_platform.api.openapi import document_identity_headers
from ava_platform.mcp.server import McpEndpoint
from ava_platform.mcp.tools import WorkerTools
from ava_platform.service.container import Services

MAX_JSON_BODY = 2 * 1024 * 1024

_ASSETS = "/docs-assets"
_docs_assets = create_static_files_router(
    path=_ASSETS, directories=[Path(swagger_ui_path)], include_in_schema=False, name="docs-assets"
)

_OPENAPI = OpenAPIConfig(
    title="AVA execution platform",
    version=__version__,
    description="Workers are blueprints for autonomous agents; each execution is a job.",
    path="/docs",
    # Swagger UI's assets are served by the app itself: a self-hosted install may be offline
    render_plugins=[
        SwaggerRenderPlugin(
            path="/",
            js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            css_url=f"{_ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{_ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{_ASSETS}/favicon-32x32.png'>",
        )
    ],
    components=Components(
        security_schemes={
            "internalSecret": SecurityScheme(
                type="apiKey", name="x-internal-secret", security_scheme_in="header"
            )
        }
    ),
)
_SECURITY: list[dict[str, list[str]]] = [
    {"internalSecret": []}
]  # on /v1/ava only: /healthz, /readyz and /metrics are public


def create_app(services: Services, *, internal_secret: str) -> Litestar:
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

    deps: dict[str, Provide] = {"principal": Provide(provide_principal)}
    deps.update(workers.dependencies(services.workers))
    deps.update(jobs.dependencies(services.jobs))
    deps.update(secrets.dependencies(services.secret_service))
    deps.update(versions.dependencies(services.deploys, services.versions))
    deps.update(schedules.dependencies(services.schedules))
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
        ],
        before_request=authorize,
        dependencies=deps,
        security=_SECURITY,
    )
    app = Litestar(
        route_handlers=[api, healthz, readyz, metrics_endpoint, _docs_assets],
        middleware=[RequestMetrics(services.metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=_OPENAPI,
        lifespan=[lifespan, lambda _app: mcp.lifespan()],
        request_max_body_size=MAX_JSON_BODY,
        debug=False,
    )
    document_identity_headers(app.openapi_schema, api.path)
    app.state.internal_secret = internal_secret
    app.state.services = services
    return app
