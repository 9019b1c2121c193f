from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.support import headers


def test_docs_page_and_its_assets_are_served_by_the_app(server_url: str) -> None:
    page = httpx.get(f"{server_url}/docs")
    assert page.status_code == 200
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert refs, page.text
    assert all(ref.startswith("/") for ref in refs), refs  # nothing from a CDN: works offline
    for ref in refs:
        asset = httpx.get(f"{server_url}{ref}")
        assert asset.status_code == 200, ref
        assert len(asset.content) > 200, ref  # the file itself, not an error page


def test_docs_page_runs_no_inline_script_under_a_strict_policy(server_url: str) -> None:
    page = httpx.get(f"{server_url}/docs")
    assert "<script>" not in page.text  # every script is a file: the CSP allows no inline one
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_bundled_swagger_ui_reads_openapi_3_1(server_url: str) -> None:
    """Swagger UI renders 3.1 documents from version 5 on; 4.x shows "Unable to render"."""
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    bundle = httpx.get(f"{server_url}/docs-assets/swagger-ui-bundle.js").text
    versions = {int(v) for v in re.findall(r'PACKAGE_VERSION:"(\d+)\.\d+\.\d+"', bundle)}
    assert versions and min(versions) >= 5, versions


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/ava")
    ]


def test_every_error_is_documented_in_avas_envelope_with_an_example(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    envelope = doc["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    body = doc["components"]["schemas"]["ErrorBody"]
    assert {"code", "message", "details"} <= set(body["properties"])
    for path, method, op in _operations(doc):
        statuses = {int(s) for s in op["responses"]}
        assert {400, 401, 403} <= statuses, (method, path)
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            media = response["content"]["application/json"]
            assert media["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, status)
            (example,) = media["examples"].values()
            # (the document leaves out a null, so `details` shows where it holds something)
            assert {"code", "message"} <= set(example["value"]["error"]), (path, status)
            assert set(example["value"]["error"]) <= {"code", "message", "details"}
    unprocessable = doc["paths"]["/v1/ava/workers"]["post"]["responses"]["422"]
    (example,) = unprocessable["content"]["application/json"]["examples"].values()
    assert example["value"]["error"]["details"][0]["field"] == "timeout_seconds"
    serialized = json.dumps(doc)
    assert "status_code" not in serialized  # Litestar's default error shape is gone


def test_statuses_per_operation_follow_what_it_can_answer(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    paths = doc["paths"]
    assert {"404", "409", "413", "422"} <= set(
        paths["/v1/ava/workers/{worker_id}/jobs"]["post"]["responses"]
    )
    assert {"404", "409"} <= set(paths["/v1/ava/jobs/{job_id}/cancel"]["post"]["responses"])
    assert "404" not in paths["/v1/ava/workers"]["get"]["responses"]  # a list never misses


def test_the_four_auth_headers_are_security_schemes_required_together(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    headers_ = {
        s["name"] for s in schemes.values() if s["type"] == "apiKey" and s["in"] == "header"
    }
    assert headers_ == {"x-internal-secret", "x-tenant-id", "x-user-id", "x-platform-role"}
    for path, method, op in _operations(doc):
        assert op["security"] == [{name: [] for name in schemes}], (method, path)
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_the_seeds_requests_are_examples(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    create = doc["paths"]["/v1/ava/workers"]["post"]["requestBody"]["content"]["application/json"]
    seed = create["examples"]["seed"]["value"]
    assert seed["name"] == "Incident enrichment pipeline"
    assert seed["secrets"] == ["SLACK_BOT_TOKEN", "VIRUSTOTAL_API_KEY"]
    update = doc["paths"]["/v1/ava/workers/{worker_id}"]["patch"]["requestBody"]
    assert update["content"]["application/json"]["examples"]["pause"]["value"] == {
        "status": "paused"
    }
    trigger = doc["paths"]["/v1/ava/workers/{worker_id}/jobs"]["post"]["requestBody"]
    assert "input" in trigger["content"]["application/json"]["examples"]["input"]["value"]


def test_a_seed_example_is_accepted_by_the_api_it_documents(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json").json()
    create = doc["paths"]["/v1/ava/workers"]["post"]["requestBody"]["content"]["application/json"]
    for example in create["examples"].values():
        answer = httpx.post(
            f"{server_url}/v1/ava/workers", json=example["value"], headers=headers()
        )
        assert answer.status_code == 201, answer.text
