"""The one place where errors become HTTP responses, all in the shape
`{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from ava_platform import errors
from ava_platform.log import get_logger

log = get_logger("ava.api")

STATUS_OF: dict[type[errors.AvaError], int] = {
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.BadRequest: 400,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMedia: 415,
    errors.ExecutorError: 503,
    errors.Unavailable: 503,
    errors.QuotaExceeded: 429,
    errors.StoreFull: 503,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    return Response(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _status_for(exc: errors.AvaError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


# Errors whose message comes from a driver (SQLite, the Docker engine) or from the server's own
# settings: the detail is logged, the client gets a generic sentence.
_GENERIC = {
    500: "internal error: the request could not be completed",
    503: "the container engine is unavailable; try again later",
}
# 503s whose own message is safe and more useful than the generic one
_OWN_MESSAGE = (errors.StoreFull, errors.Unavailable)


def handle_ava_error(request: Request[Any, Any, Any], exc: errors.AvaError) -> Response[Any]:
    status = _status_for(exc)
    if status >= 500:
        log.error(
            "server_error",
            path=request.url.path,
            status=status,
            code=exc.code,
            error_type=type(exc).__name__,
            detail=exc.message,
        )
        if not isinstance(exc, _OWN_MESSAGE):
            return error_response(status, exc.code, _GENERIC.get(status, "internal error"))
    headers = None
    if isinstance(exc, errors.QuotaExceeded):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(status, exc.code, exc.message, exc.details, headers=headers)


def _field(item: dict[str, Any], query: Any) -> str:
    key = str(item.get("key") or "")
    message = str(item.get("message", ""))
    for marker in ("unknown field `", "missing required field `"):
        if marker in message:
            return message.split(marker, 1)[1].split("`", 1)[0]
    if key and f"filter[{key}]" in query:
        return f"filter[{key}]"
    return key if key and key != "data" else "body"


def _message(item: dict[str, Any]) -> str:
    message = str(item.get("message", ""))
    if item.get("key") == "data" and message == "'data'":  # empty or `null` body
        return "a JSON object is required"
    return message


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    details = [
        {"field": _field(item, request.query_params), "message": _message(item)}
        for item in extra
        if isinstance(item, dict)
    ]
    in_body = any(isinstance(i, dict) and i.get("source") == "body" for i in extra)
    status, code = (422, "validation_error") if in_body else (400, "bad_request")
    message = f"{details[0]['field']}: {details[0]['message']}" if details else exc.detail
    return error_response(status, code, message, details or None)


_BODY_PATH = re.compile(r"^(?P<message>.*) - at `\$\.data(?:\.(?P<field>[^`]+))?`$", re.S)


def _misfiled_body_error(exc: HTTPException) -> Response[Any] | None:
    """Litestar files a body field's error as a server error when the field shares its name with
    a dependency (a worker's `secrets` and the secrets service): answer it as the 422 it is."""
    cause = exc.__cause__
    match = _BODY_PATH.match(str(cause)) if isinstance(cause, msgspec.ValidationError) else None
    if match is None:
        return None
    field, message = match["field"] or "body", match["message"]
    details = [{"field": field, "message": message}]
    return error_response(422, "validation_error", f"{field}: {message}", details)


def handle_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc.__cause__, SerializationException):
        return error_response(
            400, "malformed_json", f"request body is not valid JSON: {exc.detail}"
        )
    if status >= 500 and (misfiled := _misfiled_body_error(exc)) is not None:
        return misfiled
    if status >= 500:
        log.error("http_error", status=status, detail=exc.detail)
        return error_response(status, "internal_error", "internal error")
    # keep what the exception says about the response: `Allow` on a 405 (RFC 9110)
    return error_response(
        status, _HTTP_CODES.get(status, "error"), str(exc.detail), headers=exc.headers
    )


_UNDECODABLE = {
    UnicodeDecodeError: "it is not UTF-8",
    RecursionError: "it is nested too deeply",
}


def handle_undecodable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The JSON decoder lets these two escape (instead of a decode error) on a request body."""
    if request.method in ("POST", "PUT", "PATCH"):
        reason = _UNDECODABLE.get(type(exc), "it cannot be decoded")
        return error_response(400, "malformed_json", f"request body is not valid JSON: {reason}")
    return handle_unexpected(request, exc)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return error_response(500, "internal_error", "internal error")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ValidationException: handle_validation,
    errors.AvaError: handle_ava_error,
    HTTPException: handle_http,
    UnicodeDecodeError: handle_undecodable,
    RecursionError: handle_undecodable,
    Exception: handle_unexpected,
}
