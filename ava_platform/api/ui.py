"""The dashboard at /ui: one HTML page and its ES modules and CSS, shipped in the package
(ava_platform/ui/), plus the role table the page needs to show only the actions a role may
take (the API still enforces them). The browser talks to /v1/ava like any client.

Every page of the dashboard and of the docs goes out with a strict Content-Security-Policy
(scripts and styles from this origin only, no inline script or style attribute), so that even
a name or a log line that slipped through as HTML could not run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import MediaType, Response, Router, get
from litestar.enums import ScopeType
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ava_platform.service.auth import ROLE_PERMISSIONS

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI's icons are data: URLs in its stylesheet
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS: dict[str, str] = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
_PAGE_PREFIXES = ("/ui", "/docs")


class PageHeaders:
    """ASGI middleware: the security headers on every response under /ui and /docs (the docs
    page is rendered by Litestar's OpenAPI controller, so a route option would not reach it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != ScopeType.HTTP or not path.startswith(_PAGE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in PAGE_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@get(["/ui", "/ui/"], include_in_schema=False, sync_to_thread=False)
def dashboard() -> Response[bytes]:
    page = (UI_DIR / "index.html").read_bytes()
    return Response(page, media_type=MediaType.HTML, headers={"cache-control": "no-cache"})


@get("/ui/roles.json", include_in_schema=False, sync_to_thread=False)
def roles() -> dict[str, Any]:
    """What each role may do, from the one role table (service/auth.py), so that the page
    never drifts from what the API enforces."""
    return {role.value: sorted(p.value for p in perms) for role, perms in ROLE_PERMISSIONS.items()}


def router() -> Router:
    assets = create_static_files_router(
        path="/ui/assets",
        directories=[UI_DIR],
        include_in_schema=False,
        name="ui-assets",
    )
    return Router(path="/", route_handlers=[dashboard, roles, assets], include_in_schema=False)
