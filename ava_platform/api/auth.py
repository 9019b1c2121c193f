"""The auth guard: the internal secret (constant time), then the identity headers, then the role.
Order matters: a caller without the secret learns nothing else (401 before 400 before 403).
Then the permission the route declares (`opt["permission"]`, see api/openapi.py), checked
before the body is read or parsed, so a role that may not write gets 403 whatever its body
holds."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection

from ava_platform.errors import BadRequest, Forbidden, Unauthorized, UnsupportedMedia
from ava_platform.models import HEADER_ID, Role
from ava_platform.service.auth import Permission, Principal

JSON_TYPES = ("application/json",)
# the request headers the checks read, picked straight from the ASGI scope: Litestar's Headers
# object would parse all of them, on every request, for these few
_READ = (
    b"x-internal-secret",
    b"x-tenant-id",
    b"x-user-id",
    b"x-platform-role",
    b"content-length",
    b"content-type",
    b"transfer-encoding",
)


def _headers(raw: Any) -> dict[str, str]:
    """The first value of each header in _READ (as Litestar's `headers.get` gives)."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in _READ:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


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


async def authorize(request: Request[Any, Any, Any]) -> None:
    """Every /v1/ava route's check, run as the router's `before_request` hook (after routing,
    before the body is read or parsed): who is calling (401, 400), whether the role may do what
    the route declares (`opt["permission"]`, 403), then 415 for a body that is not JSON unless
    the route reads a raw body (`opt["raw_body"]`).

    A hook and not guards: Litestar copies the route handler for every guard it calls (and runs
    a plain `def` guard on a worker thread), on every request. No layer below the router may set
    a `before_request` of its own: it would replace this one."""
    scope = request.scope
    headers = _headers(scope["headers"])
    principal = authenticate(headers, request.app.state.internal_secret)
    scope.setdefault("state", {})["principal"] = principal
    opt = request.route_handler.opt
    principal.require(Permission(opt.get("permission", Permission.READ)))
    if not opt.get("raw_body") and scope["method"] in ("POST", "PUT", "PATCH"):
        require_json_body(headers)


async def authenticate_connection(connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
    """The same identity check for an ASGI route (the MCP endpoint), which Litestar's
    `before_request` hook never reaches; every role may read, and the endpoint checks what
    each MCP request does itself."""
    principal = authenticate(
        _headers(connection.scope["headers"]), connection.app.state.internal_secret
    )
    connection.scope.setdefault("state", {})["principal"] = principal


def require_json_body(headers: dict[str, str]) -> None:
    length = headers.get("content-length")
    has_body = (length not in (None, "0")) or "transfer-encoding" in headers
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (ctype in JSON_TYPES or ctype.endswith("+json")):
        raise UnsupportedMedia(
            f"content-type must be application/json, got {ctype or 'none'}",
            code="unsupported_media_type",
        )
