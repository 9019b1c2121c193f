"""Tool names from worker names, and a worker's input_schema as a JSON Schema: pure rules,
plus the schema's 422 on create and PATCH through the real API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ava_platform.mcp.names import MAX_TOOL_NAME, VALID_TOOL_NAME, base_name, tool_names
from ava_platform.models import Network, Runtime, Worker, WorkerStatus
from ava_platform.service.input_schema import argument_problems, schema_problems

ADD = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
}


def worker(name: str, n: int, status: WorkerStatus = WorkerStatus.ACTIVE) -> Worker:
    return Worker(
        id=f"wkr_{n:026d}", tenant_id="t", name=name, description="", runtime=Runtime.PYTHON,
        entrypoint="main.py", source_code=None, config={}, secrets=[], timeout_seconds=1,
        max_retries=0, memory_mb=256, cpus=1.0, network=Network.NONE, max_concurrency=None,
        status=status, version=1, created_at=f"2026-01-01T00:00:{n:02d}Z",
        updated_at="2026-01-01T00:00:00Z", created_by="u",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "tool"),
    [
        ("Incident enrichment pipeline", "incident_enrichment_pipeline"),
        ("send-email.v2", "send-email.v2"),
        ("  Café   crème!! ", "cafe_creme"),
        ("发送邮件", "worker"),  # nothing left once sanitised
        ("--__..", "worker"),
        ("a/b\\c:d", "a_b_c_d"),
    ],
)
def test_a_tool_name_is_the_sanitised_worker_name(name: str, tool: str) -> None:
    assert base_name(name) == tool
    assert VALID_TOOL_NAME.match(tool)


def test_a_long_name_is_cut_to_a_valid_length_even_with_its_suffix() -> None:
    names = tool_names([worker("x" * 300, 1), worker("X" * 300, 2)])
    assert len(names) == 2
    for name in names:
        assert VALID_TOOL_NAME.match(name) and len(name) <= MAX_TOOL_NAME


def test_same_names_after_sanitising_stay_unique_and_the_oldest_keeps_the_plain_one() -> None:
    first, second, third = worker("Send Email", 1), worker("send email", 2), worker("SEND_EMAIL", 3)
    names = tool_names([third, first, second])
    assert names["send_email"] is first
    assert names[f"send_email__{second.id[-10:]}"] is second
    assert names[f"send_email__{third.id[-10:]}"] is third


def test_names_are_stable_when_other_workers_come_pause_or_go() -> None:
    first, second = worker("report", 1), worker("report", 2)
    before = {w.id: n for n, w in tool_names([first, second]).items()}
    gone = worker("report", 1, WorkerStatus.DEPRECATED)
    after = {w.id: n for n, w in tool_names([gone, second, worker("report", 3)]).items()}
    assert after[second.id] == before[second.id]  # the deprecated first keeps its claim


def test_a_suffixed_name_never_takes_another_workers_own_name() -> None:
    first, second = worker("job", 1), worker("job", 2)
    squatter = worker(f"job__{second.id[-10:]}", 0)  # older, and named like second's suffix
    names = tool_names([first, second, squatter])
    assert names[f"job__{second.id[-10:]}"] is squatter
    assert len(names) == 3 and second in names.values()


@pytest.mark.parametrize(
    "schema",
    [
        ADD,
        {"type": "object"},
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/x"}}, "$defs": {"x": {}}},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
    ],
)
def test_good_schemas_pass(schema: dict[str, Any]) -> None:
    assert schema_problems(schema) == []


@pytest.mark.parametrize(
    ("schema", "fragment"),
    [
        ({"type": "array"}, "must describe an object"),
        ({"properties": {}}, "must describe an object"),
        ({"type": "object", "properties": {"a": {"type": "nope"}}}, "properties/a/type"),
        ({"type": "object", "required": "a"}, "not a valid JSON Schema"),
        ({"type": "object", "$schema": "https://example.com/mine"}, "unknown $schema"),
        ({"type": "object", "$ref": "https://example.com/s.json"}, "does not resolve"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}}, "'#/$defs/none'"),
        ({"type": "object", "anyOf": [{"$ref": "other.json#/x"}]}, "does not resolve"),
        ({"type": "object", "description": "x" * 70_000}, "at most"),
    ],
)
def test_bad_schemas_are_named(schema: dict[str, Any], fragment: str) -> None:
    problems = schema_problems(schema)
    assert len(problems) == 1 and fragment in problems[0]


def test_arguments_are_checked_against_the_schema_or_any_object() -> None:
    assert argument_problems(ADD, {"a": 1, "b": 2.5}) == []
    assert argument_problems(ADD, {"a": "one"}) == [
        {"path": "", "message": "'b' is a required property"},
        {"path": "a", "message": "'one' is not of type 'number'"},
    ]
    assert argument_problems(None, {"anything": [1, 2]}) == []
    assert argument_problems(None, [1]) != []


def test_input_schema_is_shown_and_a_bad_one_is_a_422_on_create_and_patch(
    api: httpx.Client,
) -> None:
    bad = {"type": "object", "properties": {"a": {"type": "nope"}}}
    resp = api.post("/workers", json={"name": "x", "runtime": "python", "input_schema": bad})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"][0]["field"] == "input_schema"
    assert api.get("/workers").json()["meta"]["total"] == 0  # nothing was created

    created = api.post("/workers", json={"name": "ok", "runtime": "python"}).json()
    assert created["input_schema"] is None
    path = f"/workers/{created['id']}"
    assert api.patch(path, json={"input_schema": {"type": "array"}}).status_code == 422
    assert api.get(path).json()["input_schema"] is None
    resp = api.patch(path, json={"input_schema": ADD})
    assert resp.status_code == 200 and resp.json()["input_schema"] == ADD
    assert api.get(path).json()["input_schema"] == ADD
    assert api.patch(path, json={"input_schema": None}).json()["input_schema"] is None
