"""Errors raised by the AVA client: one class per error code the server answers with.

    AvaClientError                 anything the client raises
    ├── AvaConnectionError         the server could not be reached (or the stream broke)
    ├── WaitTimeout                a client-side wait ran out before the job finished
    └── AvaApiError                the server answered with an error envelope
        ├── BadRequestError        400 bad_request
        │   ├── BadHeaderError     400 bad_header
        │   ├── InvalidFilterError 400 invalid_filter
        │   ├── MalformedJsonError 400 malformed_json
        │   └── InvalidBundleError 400 invalid_bundle
        ├── UnauthorizedError      401 unauthorized
        ├── ForbiddenError         403 forbidden
        ├── NotFoundError          404 not_found
        │   ├── WorkerNotFoundError, JobNotFoundError, ScheduleNotFoundError,
        │   └── SecretNotFoundError, VersionNotFoundError
        ├── MethodNotAllowedError  405 method_not_allowed
        ├── ConflictError          409 conflict
        │   ├── WorkerPausedError, WorkerDeprecatedError, WorkerHasNoSourceError,
        │   └── JobFinishedError, VersionNotReadyError, TooManySchedulesError
        ├── PayloadTooLargeError   413 payload_too_large
        │   └── InputTooLargeError, BundleTooLargeError
        ├── UnsupportedMediaTypeError 415 unsupported_media_type
        ├── ValidationError        422 validation_error
        ├── TooManyRequestsError   429 too_many_requests
        └── ServerError            5xx internal_error
            └── ExecutorUnavailableError 503 executor_error (image_missing, build_failed)

`error_for(status, body)` picks the class: by the envelope's `code` first, else by status.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ava_platform.models import ErrorEnvelope


class AvaClientError(Exception):
    """Base of every error the client raises."""


class AvaConnectionError(AvaClientError):
    """The server could not be reached, or a response stream broke off."""


class WaitTimeout(AvaClientError):
    """A client-side wait ended before the job did; `job` is the job as last seen."""

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


class AvaApiError(AvaClientError):
    """The server answered `{"error": {"code", "message", "details"}}` with `status`."""

    status: int = 0
    code: str = "error"

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class BadRequestError(AvaApiError):
    code = "bad_request"


class BadHeaderError(BadRequestError):
    code = "bad_header"


class InvalidFilterError(BadRequestError):
    code = "invalid_filter"


class MalformedJsonError(BadRequestError):
    code = "malformed_json"


class InvalidBundleError(BadRequestError):
    code = "invalid_bundle"


class UnauthorizedError(AvaApiError):
    code = "unauthorized"


class ForbiddenError(AvaApiError):
    code = "forbidden"


class NotFoundError(AvaApiError):
    code = "not_found"


class WorkerNotFoundError(NotFoundError):
    code = "worker_not_found"


class JobNotFoundError(NotFoundError):
    code = "job_not_found"


class ScheduleNotFoundError(NotFoundError):
    code = "schedule_not_found"


class SecretNotFoundError(NotFoundError):
    code = "secret_not_found"


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class MethodNotAllowedError(AvaApiError):
    code = "method_not_allowed"


class ConflictError(AvaApiError):
    code = "conflict"


class WorkerPausedError(ConflictError):
    code = "worker_paused"


class WorkerDeprecatedError(ConflictError):
    code = "worker_deprecated"


class WorkerHasNoSourceError(ConflictError):
    code = "worker_has_no_source"


class JobFinishedError(ConflictError):
    code = "job_finished"


class VersionNotReadyError(ConflictError):
    code = "version_not_ready"


class TooManySchedulesError(ConflictError):
    code = "too_many_schedules"


class PayloadTooLargeError(AvaApiError):
    code = "payload_too_large"


class InputTooLargeError(PayloadTooLargeError):
    code = "input_too_large"


class BundleTooLargeError(PayloadTooLargeError):
    code = "bundle_too_large"


class UnsupportedMediaTypeError(AvaApiError):
    code = "unsupported_media_type"


class ValidationError(AvaApiError):
    code = "validation_error"


class TooManyRequestsError(AvaApiError):
    code = "too_many_requests"


class ServerError(AvaApiError):
    code = "internal_error"


class ExecutorUnavailableError(ServerError):
    code = "executor_error"


class ImageMissingError(ExecutorUnavailableError):
    code = "image_missing"


class BuildFailedError(ExecutorUnavailableError):
    code = "build_failed"


def _all_subclasses(cls: type[AvaApiError]) -> list[type[AvaApiError]]:
    out: list[type[AvaApiError]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_all_subclasses(sub)]
    return out


ERRORS_BY_CODE: dict[str, type[AvaApiError]] = {c.code: c for c in _all_subclasses(AvaApiError)}
ERRORS_BY_STATUS: dict[int, type[AvaApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: ValidationError,
    429: TooManyRequestsError,
    503: ExecutorUnavailableError,
}


def error_for(status: int, body: bytes) -> AvaApiError:
    """The exception for an error response: its code's class, else its status's class."""
    try:
        err = msgspec.json.decode(body, type=ErrorEnvelope).error
        code, message, details = err.code, err.message, err.details
    except (msgspec.DecodeError, msgspec.ValidationError):
        code, message, details = "", body.decode("utf-8", "replace")[:500] or "no body", None
    cls = ERRORS_BY_CODE.get(code) or _by_status(status)
    return cls(status, code or cls.code, message, details)


def _by_status(status: int) -> type[AvaApiError]:
    if status in ERRORS_BY_STATUS:
        return ERRORS_BY_STATUS[status]
    return ServerError if status >= 500 else AvaApiError
