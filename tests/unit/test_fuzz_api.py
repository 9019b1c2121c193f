"""Property-based fuzzing of EVERY operation in the served OpenAPI document (schemathesis),
against the real app on a real socket and a real SQLite file, containers scripted (no Docker).

Bounded and reproducible: few examples per operation, derandomized. Checks: no 5xx, and the
response conforms to the document (status, content type, headers, body schema); data that
violates the schema is refused; every error is in the one error shape. Left out on purpose: positive_data_acceptance (the document
cannot express every semantic rule: a cron that never fires, a name that is not an env var),
use_after_free (DELETE of a worker is a soft delete: it stays readable, by contract),
allow_header_conformance (see the report: Litestar's OPTIONS Allow lists one route's methods).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ava_platform.api.app import create_app
from ava_platform.config import load_settings
from ava_platform.executor.builds import FakeImageBuilder
from ava_platform.executor.fake import FakeExecutor
from ava_platform.wiring import Platform
from tests.scripted import scripted_server
from tests.support import headers, server_env

pytestmark = pytest.mark.slow

AUTH = headers(tenant="ten_fuzz", role="tenant-admin", user="usr_fuzz")


@schemathesis.check
def one_error_shape(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Every error answers the one shape: {"error": {"code", "message", "details"}} as JSON."""
    if response.status_code < 400:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return None


CHECKS = [
    not_a_server_error,
    one_error_shape,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schemathesis.serializer("application/gzip", "application/zip")
def _bundle(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_server(tmp_path_factory.mktemp("fuzz") / "ava.db", delay_s=0.01) as url:
        # one worker, so that some ids the fuzzer tries name a real resource
        body = {"name": "fuzz", "runtime": "python", "source_code": "def handler(i, e): return i"}
        assert httpx.post(f"{url}/v1/ava/workers", json=body, headers=AUTH).status_code == 201
        yield url


def _document() -> dict[str, Any]:
    """The document the app serves, built from the app itself (parametrize needs it at
    collection time); test_the_fuzzed_document_is_the_served_one proves they are the same."""
    settings_ = load_settings(server_env(Path(tempfile.gettempdir()) / "ava-fuzz-unused.db"))
    platform = Platform(settings_, executor=FakeExecutor(), builder=FakeImageBuilder())
    app = create_app(platform, internal_secret=settings_.internal_secret)
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_fuzzed_document_is_the_served_one(served: str) -> None:
    served_doc = httpx.get(f"{served}/docs/openapi.json", timeout=10).json()
    assert served_doc == json.loads(json.dumps(DOCUMENT))
    operations = [(m, p) for p, item in served_doc["paths"].items() for m in item]
    assert len(operations) == len(list(schema.get_all_operations())) >= 27


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_its_contract(case: schemathesis.Case, served: str) -> None:
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    # a negative case may carry a deliberately bad identity header: keep it, add only the secret
    extra = {"x-internal-secret": AUTH["x-internal-secret"]} if negative else AUTH
    case.call_and_validate(base_url=served, headers=extra, checks=CHECKS, timeout=10)
