"""A worker's `input_schema`: checked as a JSON Schema when it is set, then used to check the
arguments of each MCP tool call before any job is queued.

References are resolved inside the schema only (`#/$defs/...`): the validator is given an
empty registry, so a `$ref` to a URL is never fetched (a schema must not make the platform
send requests anywhere)."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from jsonschema import Draft202012Validator, SchemaError, validators
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

MAX_SCHEMA_BYTES = 64 * 1024
MAX_REPORTED = 20  # argument problems reported at once
ANY_OBJECT: dict[str, Any] = {"type": "object"}  # the tool schema of a worker without one
_ROOT = "urn:ava:input-schema"


def schema_problems(schema: dict[str, Any]) -> list[str]:
    """Why `schema` cannot be a worker's input schema; empty when it can."""
    if len(msgspec.json.encode(schema)) > MAX_SCHEMA_BYTES:
        return [f"must be at most {MAX_SCHEMA_BYTES} bytes of JSON"]
    if schema.get("type") != "object":
        return ['must describe an object: {"type": "object", ...} (tool arguments are an object)']
    cls = _validator_class(schema)
    if cls is None:
        return [f"unknown $schema {schema.get('$schema')!r}"]
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return [f"not a valid JSON Schema at {where}: {exc.message}"]
    return [_ref_problem(ref) for ref in _unresolvable_refs(schema)]


def _ref_problem(ref: str) -> str:
    return f"$ref {ref!r} does not resolve inside the schema (only #... references are allowed)"


def _unresolvable_refs(schema: dict[str, Any]) -> list[str]:
    resolver = Registry().with_resource(_ROOT, DRAFT202012.create_resource(schema)).resolver(_ROOT)
    bad = []
    for ref in _refs(schema):
        try:
            if not ref.startswith("#"):
                raise Unresolvable(ref)
            resolver.lookup(ref)
        except Unresolvable:
            bad.append(ref)
    return bad


def _refs(node: Any) -> list[str]:
    """Every `$ref` string in the schema, at any depth."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def argument_problems(schema: dict[str, Any] | None, arguments: Any) -> list[dict[str, str]]:
    """Each way `arguments` break `schema` (at most MAX_REPORTED), as `{path, message}`."""
    validator = _validator(schema if schema is not None else ANY_OBJECT)
    try:
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except Unresolvable as exc:  # checked when set; kept for schemas stored before that check
        return [{"path": "", "message": f"unresolvable $ref in the worker's schema: {exc}"}]
    return [
        {"path": "/".join(str(p) for p in e.absolute_path), "message": e.message}
        for e in errors[:MAX_REPORTED]
    ]


def _validator_class(schema: dict[str, Any]) -> type[Validator] | None:
    if "$schema" not in schema:
        return cast("type[Validator]", Draft202012Validator)  # the MCP default dialect
    return cast("type[Validator] | None", validators.validator_for(schema, default=None))


def _validator(schema: dict[str, Any]) -> Validator:
    cls = _validator_class(schema) or Draft202012Validator
    return cls(schema, registry=Registry())
