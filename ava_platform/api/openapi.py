"""What each route declares besides its handler: the permission it needs (checked by the
auth hook before its body is parsed, so a role that may not write learns nothing about
its body) and the error statuses it may answer, all in the one error envelope.

Also the bounds the store imposes on numbers: SQLite integers are signed 64-bit, so a number
beyond them can never name a stored row (and binding it raises OverflowError)."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from ava_platform.models import ErrorEnvelope
from ava_platform.service.auth import Permission

STORE_INT_MAX = 2**63 - 1
"""The largest integer SQLite stores."""

ALWAYS = (400, 401, 403)  # bad identity header, missing secret, role not allowed
_WHY = {
    400: "Malformed request, bad identity header or invalid filter",
    401: "Missing or wrong x-internal-secret",
    403: "Role not allowed",
    404: "Unknown resource, or another tenant's",
    409: "The resource's state forbids the action",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Field validation failed (per-field details)",
    429: "The tenant is at its queued-jobs quota; see Retry-After",
    503: "The container engine is unavailable, or cannot run the job protected",
}


def route(
    permission: Permission = Permission.READ, *statuses: int, raw_body: bool = False
) -> dict[str, Any]:
    """Decorator arguments for a /v1/ava route: `@post(..., **route(Permission.MANAGE, 404))`;
    `raw_body`: the route reads a body that is not JSON (an archive)."""
    codes = sorted({*ALWAYS, *statuses})
    return {
        "opt": {"permission": permission, "raw_body": raw_body},
        "responses": {
            code: ResponseSpec(
                ErrorEnvelope,
                description=_WHY.get(code, HTTPStatus(code).phrase),
                generate_examples=False,
            )
            for code in codes
        },
    }


def in_store_range(number: int) -> bool:
    return -STORE_INT_MAX - 1 <= number <= STORE_INT_MAX


def _content(
    media_types: tuple[str, ...], fmt: OpenAPIFormat | None = None
) -> dict[str, OpenAPIMediaType]:
    schema = Schema(type=OpenAPIType.STRING, format=fmt)
    return {media: OpenAPIMediaType(schema=schema) for media in media_types}


def operation(
    *,
    text_success: tuple[int, tuple[str, ...]] | None = None,
    optional_body: bool = False,
    binary_body: tuple[str, ...] = (),
) -> type[Operation]:
    """An Operation class for what Litestar cannot infer: a success response in several text
    media types (logs: text, NDJSON or Server-Sent Events), a JSON body that may be left out,
    a binary body read from the raw request (deploy)."""

    @dataclass  # so that the generated __init__ calls __post_init__
    class _Operation(Operation):
        def __post_init__(self) -> None:
            if text_success is not None:
                status, media_types = text_success
                success = (self.responses or {}).get(str(status))
                if isinstance(success, OpenAPIResponse):
                    success.content = _content(media_types)
            if optional_body and isinstance(self.request_body, RequestBody):
                self.request_body.required = False
            if binary_body:
                self.request_body = RequestBody(
                    content=_content(binary_body, OpenAPIFormat.BINARY), required=True
                )

    return _Operation
