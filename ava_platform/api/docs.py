"""The API's own docs: the OpenAPI document's settings, the examples it shows, and the
interactive page at /docs (Swagger UI 5, which reads OpenAPI 3.1), served from a Python
package by the app itself so that a self-hosted install works offline.

The page has no inline script (its start-up code is /ui/assets/docs-init.js), so it is served
under the same strict Content-Security-Policy as the dashboard (api/ui.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.openapi.spec import (
    Components,
    Example,
    OpenAPI,
    OpenAPIResponse,
    Operation,
    RequestBody,
    SecurityScheme,
)
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from ava_platform import __version__

ASSETS = "/docs-assets"
DOCS_PATH = "/docs"


def docs_assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS,
        directories=[Path(str(swagger_ui_path))],
        include_in_schema=False,
        name="docs-assets",
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AVA API reference</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="/ui/assets/docs-init.js"></script>
</body>
</html>
"""


class OfflineSwagger(OpenAPIRenderPlugin):
    """Swagger UI from the installed package, started by a script file (no inline script)."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        spec = self.get_openapi_json_route(request)
        return _PAGE.format(assets=ASSETS, spec=spec).encode()


# x-internal-secret proves the caller is trusted; the other three say who it is. All four go on
# every /v1/ava request: one security requirement naming the four schemes (they all apply).
_HEADERS = {
    "internalSecret": ("x-internal-secret", "The platform's shared secret (AVA_INTERNAL_SECRET)."),
    "tenant": ("x-tenant-id", "Tenant: 1-128 characters of [A-Za-z0-9_-]."),
    "user": ("x-user-id", "User: 1-128 characters of [A-Za-z0-9_-]."),
    "role": (
        "x-platform-role",
        "tenant-system-admin | tenant-admin | tenant-developer | tenant-operator | tenant-viewer",
    ),
}
SECURITY: list[dict[str, list[str]]] = [{name: [] for name in _HEADERS}]

OPENAPI_CONFIG = OpenAPIConfig(
    title="AVA execution platform",
    version=__version__,
    description=(
        "Workers are blueprints for autonomous agents; each execution is a job.\n\n"
        "Every `/v1/ava` request carries four headers (use **Authorize** once for all four). "
        'Every error is `{"error": {"code", "message", "details"}}`.'
    ),
    path=DOCS_PATH,
    render_plugins=[OfflineSwagger(path="/")],
    components=Components(
        security_schemes={
            scheme: SecurityScheme(
                type="apiKey", name=header, security_scheme_in="header", description=why
            )
            for scheme, (header, why) in _HEADERS.items()
        }
    ),
)

# -- examples: the seed's own requests, and one error of each status ---------------------------

_SEED_WORKER = {
    "name": "Incident enrichment pipeline",
    "runtime": "python",
    "description": "Pulls threat intel for new critical incidents and posts enriched summary to Slack",
    "timeout_seconds": 120,
    "max_retries": 1,
    "config": {"SLACK_CHANNEL": "#security-ops", "MIN_SEVERITY": "high"},
    "secrets": ["SLACK_BOT_TOKEN", "VIRUSTOTAL_API_KEY"],
    "source_code": 'async def handler(input, env):\n    return {"success": True}\n',
}
_REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, Example]] = {
    ("/v1/ava/workers", "post"): {
        "seed": Example(summary="The seed's worker", value=_SEED_WORKER),
        "minimal": Example(
            summary="Only what is required",
            value={"name": "hello", "runtime": "nodejs"},
        ),
    },
    ("/v1/ava/workers/{worker_id}", "patch"): {
        "pause": Example(summary="Pause (no new jobs are queued)", value={"status": "paused"}),
        "resume": Example(summary="Resume", value={"status": "active"}),
        "config": Example(
            summary="Merge config (null removes a key)",
            value={"config": {"MIN_SEVERITY": "critical", "SLACK_CHANNEL": None}},
        ),
    },
    ("/v1/ava/workers/{worker_id}/jobs", "post"): {
        "input": Example(summary="Run with an input", value={"input": {"incident_id": "INC-1042"}}),
    },
    ("/v1/ava/workers/{worker_id}/schedules", "post"): {
        "every5": Example(
            summary="Every five minutes",
            value={"cron": "*/5 * * * *", "timezone": "UTC", "input": {"channel": "#ops"}},
        ),
    },
    ("/v1/ava/secrets/{name}", "put"): {
        "set": Example(summary="Set a value", value={"value": "xoxb-not-a-real-token"}),
    },
}
_ERROR_EXAMPLES: dict[int, tuple[str, str, Any]] = {
    400: ("bad_header", "x-tenant-id must be 1-128 characters of [A-Za-z0-9_-]", None),
    401: ("unauthorized", "missing or wrong x-internal-secret", None),
    403: ("forbidden", "role tenant-viewer may not run", None),
    404: ("worker_not_found", "worker wkr_01hxyz not found", None),
    409: ("worker_paused", "worker is paused: it accepts no new jobs", None),
    413: ("input_too_large", "input exceeds 1048576 bytes", None),
    415: ("unsupported_media_type", "content-type must be application/json, got text/plain", None),
    422: (
        "validation_error",
        "timeout_seconds: Expected `int` <= 3600",
        [{"field": "timeout_seconds", "message": "Expected `int` <= 3600"}],
    ),
    429: (
        "quota_exceeded",
        "tenant acme has 10000 queued jobs, its quota is 10000",
        {"quota": "max_queued", "limit": 10000, "queued": 10000},
    ),
    503: ("executor_error", "the container engine is unavailable; try again later", None),
}


def _operations(openapi: OpenAPI) -> dict[tuple[str, str], Operation]:
    found: dict[tuple[str, str], Operation] = {}
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            op = getattr(item, method, None)
            if isinstance(op, Operation):
                found[(path, method)] = op
    return found


def _error_example(status: int) -> Example | None:
    if status not in _ERROR_EXAMPLES:
        return None
    code, message, details = _ERROR_EXAMPLES[status]
    value = {"error": {"code": code, "message": message, "details": details}}
    return Example(summary=code, value=value)


def add_examples(openapi: OpenAPI) -> None:
    """Litestar cannot take examples for a body struct or an error response from the handler's
    signature: they are added to the built document, once, before it is first served."""
    for key, op in _operations(openapi).items():
        body = op.request_body
        if key in _REQUEST_EXAMPLES and isinstance(body, RequestBody):
            for media in body.content.values():
                media.examples = dict(_REQUEST_EXAMPLES[key])
        for status, response in (op.responses or {}).items():
            example = _error_example(int(status)) if status.isdigit() else None
            if example is None or not isinstance(response, OpenAPIResponse):
                continue
            for media in (response.content or {}).values():
                media.examples = {example.summary or status: example}
