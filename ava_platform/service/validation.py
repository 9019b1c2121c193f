"""Field rules that msgspec's type constraints cannot express; every violation is collected so
a client sees them all at once (422 with per-field details)."""

from __future__ import annotations

import base64
import binascii
import math
import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ava_platform.errors import Invalid
from ava_platform.models import ENV_NAME, Runtime
from ava_platform.service.input_schema import schema_problems

RESERVED_ENV_PREFIX = "AVA_"


class Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise Invalid(
                f"{first['field']}: {first['message']}"
                + (f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""),
                details=self.items,
            )


def check_env_names(problems: Problems, field: str, names: Iterable[str]) -> None:
    for name in names:
        if not ENV_NAME.match(name):
            problems.add(f"{field}.{name}", "must be a valid environment variable name")
        elif name.upper().startswith(RESERVED_ENV_PREFIX):
            problems.add(f"{field}.{name}", "names starting with AVA_ are reserved")


def check_config(problems: Problems, config: Mapping[str, Any]) -> None:
    check_env_names(problems, "config", config)
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            problems.add(f"config.{key}", "must be a finite number")


def check_secrets(problems: Problems, secrets: list[str]) -> None:
    check_env_names(problems, "secrets", secrets)
    if len(set(secrets)) != len(secrets):
        problems.add("secrets", "names must be unique")


def has_control_chars(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_name(problems: Problems, name: str) -> None:
    if not name.strip():
        problems.add("name", "must not be blank")
    elif has_control_chars(name):
        problems.add("name", "must not contain control characters")


def check_entrypoint(problems: Problems, entrypoint: str) -> None:
    normal = posixpath.normpath(entrypoint)
    if entrypoint.startswith("/") or normal.startswith("..") or "\0" in entrypoint:
        problems.add("entrypoint", "must be a relative path inside the source bundle")


def check_cpus(problems: Problems, cpus: float) -> None:
    cores = os.cpu_count() or 1
    if cpus > cores:
        problems.add("cpus", f"must be at most {cores} (the host's cores)")


def check_source(problems: Problems, runtime: Runtime, source: str | None) -> None:
    if source is None or runtime is not Runtime.WASM:
        return
    try:
        module = base64.b64decode(source, validate=True)
    except (binascii.Error, ValueError):
        problems.add("source_code", "wasm source must be base64 of a .wasm module")
        return
    if not module.startswith(b"\0asm"):
        problems.add("source_code", "wasm source does not decode to a WebAssembly module")


def check_input_schema(problems: Problems, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    for message in schema_problems(schema):
        problems.add("input_schema", message)
