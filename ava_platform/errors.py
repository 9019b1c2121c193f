"""The one error hierarchy of AVA. Adapters translate driver errors into these; the API maps
them to HTTP in one place (`api/errors.py`).

    AvaError
    ├── ConfigError          settings missing or malformed; the server refuses to start
    ├── Unauthorized         401: x-internal-secret missing or wrong
    ├── Forbidden            403: role missing, unknown, or not allowed
    ├── BadRequest           400: malformed request, bad header or invalid filter
    ├── NotFound             404: unknown, or another tenant's, resource
    ├── Conflict             409: the resource's state forbids the action
    ├── Invalid              422: field validation, with per-field details
    ├── PayloadTooLarge      413
    ├── UnsupportedMedia     415
    ├── Unavailable          503 with the platform's own reason: egress jobs while the
    │                        firewall rules are not installed
    ├── QuotaExceeded        429: the tenant is at its queued-jobs quota (with Retry-After)
    ├── StoreError           the store failed (not open, or a SQLite error); never the driver's
    │   │                    own exception
    │   └── StoreFull        503: the store's disk is full; nothing was written
    ├── VaultError           a secret cannot be decrypted (unknown key version, or tampered)
    ├── MissingSecret        a job names secrets that are not set
    │   └── SecretUnreadable the secrets exist but no configured key decrypts them
    └── ExecutorError        the container engine failed (transient or not)
        ├── ImageMissing     the runtime image is not built
        └── BuildFailed      an image could not be built: a deployed bundle's, or a runtime
                             image (`ava images build`: a build or the Debian bootstrap
                             failed, or the files to build from are missing)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AvaError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class ConfigError(AvaError):
    code = "config_error"


class Unauthorized(AvaError):
    code = "unauthorized"


class Forbidden(AvaError):
    code = "forbidden"


class BadRequest(AvaError):
    code = "bad_request"


class NotFound(AvaError):
    code = "not_found"


class Conflict(AvaError):
    code = "conflict"


class Invalid(AvaError):
    code = "validation_error"


class PayloadTooLarge(AvaError):
    code = "payload_too_large"


class UnsupportedMedia(AvaError):
    code = "unsupported_media_type"


class QuotaExceeded(AvaError):
    code = "quota_exceeded"
    retry_after_s = 5  # a guess a client can act on: slots free in seconds, not hours


class StoreError(AvaError):
    code = "store_error"


class StoreFull(StoreError):
    code = "store_full"


class VaultError(AvaError):
    code = "vault_error"


class MissingSecret(AvaError):
    code = "missing_secret"

    def __init__(self, tenant_id: str, names: Sequence[str]) -> None:
        super().__init__(f"secret(s) not set: {', '.join(names)}")
        self.names = list(names)


class SecretUnreadable(MissingSecret):
    """A named secret exists but no configured key decrypts it: for the job, it is missing."""

    def __init__(self, tenant_id: str, names: Sequence[str]) -> None:
        super().__init__(tenant_id, names)
        self.message = (
            f"secret(s) cannot be decrypted with the configured AVA_SECRET_KEY: {', '.join(names)}"
        )


class Unavailable(AvaError):
    code = "unavailable"


class ExecutorError(AvaError):
    code = "executor_error"


class ImageMissing(ExecutorError):
    code = "image_missing"


class BuildFailed(ExecutorError):
    code = "build_failed"
