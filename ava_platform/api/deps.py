"""What a handler needs from its request: the caller, as `api/auth.py: authorize` found it, and
the platform's services. Handlers read both straight from the connection rather than through
Litestar's dependency injection, which resolves every injected parameter on every request (in
an anyio task group when there are several): a fifth of a point read's cost (#16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar import Request

from ava_platform.service.auth import Principal

if TYPE_CHECKING:
    from ava_platform.service.container import Services

Req = Request[Any, Any, Any]


def caller(request: Req) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


def services(request: Req) -> Services:
    found: Services = request.app.state.services
    return found
