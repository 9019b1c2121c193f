"""Liveness and readiness; no headers needed."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from ava_platform.service.container import Services


@get("/healthz", summary="Liveness", tags=["health"], include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/readyz",
    summary="Readiness: store and Docker engine reachable; the prewarmed pool",
    tags=["health"],
)
async def readyz(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    services: Services = request.app.state.services
    checks = await services.readiness()
    ready = all(checks.values())
    return Response(
        {"status": "ready" if ready else "unavailable", "checks": checks, "pool": services.pool()},
        status_code=200 if ready else 503,
    )
