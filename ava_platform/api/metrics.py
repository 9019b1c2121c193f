"""GET /metrics (Prometheus text, no auth, like /healthz) and the middleware that times every
routed API request by its route template, so ids never become label values."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ava_platform.metrics import CONTENT_TYPE, PlatformMetrics

# Litestar appends "; charset=utf-8" to every text/* media type itself
_MEDIA = CONTENT_TYPE.split("; charset=")[0]


@get("/metrics", summary="Prometheus metrics", tags=["health"], media_type=_MEDIA)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    metrics: PlatformMetrics = request.app.state.services.metrics
    return Response(await metrics.render(), media_type=_MEDIA)


class RequestMetrics(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: PlatformMetrics) -> None:
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler ends as a 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, send_wrapper)
        finally:
            route = str(scope.get("path_template") or "unmatched")
            method = str(scope.get("method", "GET"))
            self.metrics.request_finished(method, route, status, time.perf_counter() - started)
