"""structlog set-up: JSON lines off a TTY, console rendering on one, and a processor that
redacts any registered secret value before an event is rendered."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SENSITIVE_KEYS = frozenset({"value", "secret", "secret_value", "x-internal-secret", "token"})
_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Values seen by the platform (secret values, the internal secret) are never logged."""
    if len(value) >= 4:
        _registered.add(value)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, val in list(event.items()):
        if key.lower() in _SENSITIVE_KEYS:
            event[key] = "***"
        elif isinstance(val, str):
            for secret in _registered:
                if secret in val:
                    val = val.replace(secret, "***")
            event[key] = val
    return event


def configure(level: int = logging.INFO, *, json: bool | None = None) -> None:
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
