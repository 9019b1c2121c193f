"""The auth guard: the internal secret (constant time), then the identity headers, then the role.
Order matters: a caller without the secret learns nothing else (401 before 400 before 403).
Then the permission guard: the permission a route declares (`opt["permission"]`, see
api/openapi.py), checked before the body is read or parsed, so a role that may not write gets
403 whatever its body holds."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from ava_platform.errors import BadRequest, Forbidden, Unauthorized, UnsupportedMedia
from ava_platform.models import HEADER_ID, Role
from ava_platform.service.auth import Permission, Principal

JSON_TYPES = ("application/json",)


def authenticate(headers: Any, internal_secret: str) -> Principal:
    given = headers.get("x-internal-secret")
    if not given or not hmac.compare_digest(given.encode(), internal_secret.encode()):
        raise Unauthorized("missing or wrong x-internal-secret", code="unauthorized")
    ids = {}
    for name in ("x-tenant-id", "x-user-id"):
        value = headers.get(name)
        if not value or not HEADER_ID.match(value):
            raise BadRequest(f"{name} must be 1-128 characters of [A-Za-z0-9_-]", code="bad_header")
        ids[name] = value
    try:
        role = Role(headers.get("x-platform-role", ""))
    except ValueError:
        raise Forbidden("missing or unknown x-platform-role", code="forbidden") from None
    return Principal(tenant_id=ids["x-tenant-id"], user_id=ids["x-user-id"], role=role)


def auth_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    secret: str = connection.app.state.internal_secret
    connection.state.principal = authenticate(connection.headers, secret)


def permission_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    principal: Principal = connection.state.principal
    permission = handler.opt.get("permission", Permission.READ)
    principal.require(Permission(permission))


def json_body_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """415 for a body that is not JSON, before it is parsed."""
    if connection.scope.get("method") not in ("POST", "PUT", "PATCH"):
        return
    length = connection.headers.get("content-length")
    has_body = (length not in (None, "0")) or "transfer-encoding" in connection.headers
    ctype = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (ctype in JSON_TYPES or ctype.endswith("+json")):
        raise UnsupportedMedia(
            f"content-type must be application/json, got {ctype or 'none'}",
            code="unsupported_media_type",
        )


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal
