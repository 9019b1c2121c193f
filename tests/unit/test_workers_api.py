"""The Workers API as a client sees it: real HTTP to a real server backed by a real SQLite file.

Each test gets a fresh tenant (the `api` fixture), so counts and lists are exact.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

SEED_BODY: dict[str, Any] = {
    "name": "Incident enrichment pipeline",
    "runtime": "python",
    "description": "Pulls threat intel for new critical incidents and posts enriched summary to Slack",
    "timeout_seconds": 120,
    "max_retries": 1,
    "config": {"SLACK_CHANNEL": "#security-ops", "MIN_SEVERITY": "high"},
    "secrets": ["SLACK_BOT_TOKEN", "VIRUSTOTAL_API_KEY"],
    "source_code": "async def handler(input, env):\n # ... enrichment logic",
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JSON = {"content-type": "application/json"}
WASM_MODULE = base64.b64encode(b"\0asm\x01\0\0\0").decode()


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": "w", "runtime": "python", **fields}
    response = api.post("/workers", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def total(api: httpx.Client, **params: Any) -> int:
    response = api.get("/workers", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["meta"]["total"])


def names(api: httpx.Client, **params: Any) -> set[str]:
    response = api.get("/workers", params={"per_page": 100, **params})
    assert response.status_code == 200, response.text
    return {w["name"] for w in response.json()["data"]}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> Any:
    """Every error has one shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert re.fullmatch(r"[a-z][a-z_]*", body["error"]["code"])
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]["details"]


def field_errors(response: httpx.Response) -> list[str]:
    details = assert_error(response, 422, "validation_error")
    assert isinstance(details, list) and details
    assert all(set(d) == {"field", "message"} and d["message"] for d in details)
    return [d["field"] for d in details]


# --- create ------------------------------------------------------------------------------------


def test_seed_example_creates_worker_with_every_field(api: httpx.Client) -> None:
    response = api.post("/workers", json=SEED_BODY)
    assert response.status_code == 201, response.text
    worker = response.json()
    for key, value in SEED_BODY.items():
        assert worker[key] == value, key
    assert re.fullmatch(r"wkr_[0-9a-z]{26}", worker["id"])
    assert worker["tenant_id"] == api.headers["x-tenant-id"]
    assert worker["created_by"] == api.headers["x-user-id"]
    assert worker["status"] == "active"
    assert worker["version"] == 1
    assert worker["entrypoint"] == "main.py"
    assert RFC3339_UTC.match(worker["created_at"])
    assert worker["updated_at"] == worker["created_at"]
    assert api.get(f"/workers/{worker['id']}").json() == worker


def test_create_applies_defaults(api: httpx.Client) -> None:
    worker = create(api)
    assert {k: worker[k] for k in DEFAULTS} == DEFAULTS


DEFAULTS: dict[str, Any] = {
    "description": "",
    "source_code": None,
    "config": {},
    "secrets": [],
    "timeout_seconds": 300,
    "max_retries": 0,
    "memory_mb": 256,
    "cpus": 1.0,
    "network": "egress",
    "max_concurrency": None,
}


@pytest.mark.parametrize(
    ("runtime", "entrypoint"),
    [
        ("nodejs", "index.js"),
        ("python", "main.py"),
        ("deno", "main.ts"),
        ("shell", "main.sh"),
        ("wasm", "main.wasm"),
    ],
)
def test_default_entrypoint_follows_runtime(
    api: httpx.Client, runtime: str, entrypoint: str
) -> None:
    assert create(api, runtime=runtime)["entrypoint"] == entrypoint
    assert create(api, runtime=runtime, entrypoint="src/app.bin")["entrypoint"] == "src/app.bin"


@pytest.mark.parametrize(
    "fields",
    [
        {"timeout_seconds": 1},
        {"timeout_seconds": 3600},
        {"max_retries": 0},
        {"max_retries": 5},
        {"memory_mb": 16},
        {"memory_mb": 8192},
        {"cpus": 0.1},
        {"cpus": float(os.cpu_count() or 1)},
        {"network": "none"},
        {"max_concurrency": 1},
        {"name": "n" * 200},
        {"config": {"S": "text", "I": 3, "F": 1.5, "B": False, "_lower_ok": "x"}},
        {"secrets": ["A", "_B", "c9"]},
        {"runtime": "wasm", "source_code": WASM_MODULE},
    ],
    ids=lambda f: ",".join(f"{k}={str(v)[:20]}" for k, v in f.items()),
)
def test_create_accepts_boundary_values(api: httpx.Client, fields: dict[str, Any]) -> None:
    worker = create(api, **fields)
    for key, value in fields.items():
        assert worker[key] == value


INVALID_CREATE: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "a\u0000b"}, "name"),
    ({"name": 7}, "name"),
    ({"runtime": "java"}, "runtime"),
    ({"runtime": None}, "runtime"),
    ({"description": "d" * 4001}, "description"),
    ({"entrypoint": ""}, "entrypoint"),
    ({"entrypoint": "/etc/passwd"}, "entrypoint"),
    ({"entrypoint": "../outside.py"}, "entrypoint"),
    ({"entrypoint": "e" * 256}, "entrypoint"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 3601}, "timeout_seconds"),
    ({"timeout_seconds": 1.5}, "timeout_seconds"),
    ({"timeout_seconds": True}, "timeout_seconds"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 6}, "max_retries"),
    ({"memory_mb": 15}, "memory_mb"),
    ({"memory_mb": 8193}, "memory_mb"),
    ({"cpus": 0.05}, "cpus"),
    ({"cpus": (os.cpu_count() or 1) + 1}, "cpus"),
    ({"network": "host"}, "network"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"config": ["A"]}, "config"),
    ({"config": {"1ABC": "x"}}, "config.1ABC"),
    ({"config": {"A-B": "x"}}, "config.A-B"),
    ({"config": {"": "x"}}, "config."),
    ({"config": {"AVA_JOB_ID": "x"}}, "config.AVA_JOB_ID"),
    ({"config": {"A": {"nested": 1}}}, "config"),
    ({"config": {"A": [1]}}, "config"),
    ({"config": {"A": None}}, "config"),
    ({"secrets": "TOKEN"}, "secrets"),
    ({"secrets": [1]}, "secrets"),
    ({"secrets": ["bad name"]}, "secrets.bad name"),
    ({"secrets": ["9LIVES"]}, "secrets.9LIVES"),
    ({"secrets": ["AVA_ATTEMPT"]}, "secrets.AVA_ATTEMPT"),
    ({"secrets": ["A", "A"]}, "secrets"),
    ({"secrets": [f"S{i}" for i in range(101)]}, "secrets"),
    ({"runtime": "wasm", "source_code": "not base64!"}, "source_code"),
    ({"runtime": "wasm", "source_code": base64.b64encode(b"ELF").decode()}, "source_code"),
    ({"id": "wkr_mine"}, "id"),
    ({"tenant_id": "ten_other"}, "tenant_id"),
    ({"version": 9}, "version"),
    ({"status": "paused"}, "status"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ({"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
    ({"created_by": "usr_other"}, "created_by"),
]


@pytest.mark.parametrize(
    ("fields", "field"), INVALID_CREATE, ids=[f"{f}:{str(b)[:40]}" for b, f in INVALID_CREATE]
)
def test_create_rejects_each_invalid_field(
    api: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    response = api.post("/workers", json={"name": "w", "runtime": "python", **fields})
    reported = field_errors(response)
    assert any(f == field or f.startswith(field) for f in reported), reported
    assert total(api) == 0
    assert total(api, **{"filter[status]": "deprecated"}) == 0


@pytest.mark.parametrize("missing", ["name", "runtime"])
def test_create_requires_name_and_runtime(api: httpx.Client, missing: str) -> None:
    body = {"name": "w", "runtime": "python"}
    del body[missing]
    assert field_errors(api.post("/workers", json=body)) == [missing]


def test_create_reports_every_problem_at_once(api: httpx.Client) -> None:
    response = api.post(
        "/workers",
        json={"name": "w", "runtime": "python", "config": {"1X": "a"}, "secrets": ["b-c"]},
    )
    assert sorted(field_errors(response)) == ["config.1X", "secrets.b-c"]


# --- transport: JSON, media type, size -------------------------------------------------------


MALFORMED = [
    b"{",
    b'{"name": }',
    b'{"name": "w", "runtime": "python"} trailing',
    b"{'name': 'w'}",
    b'{"name": "\xff\xfe", "runtime": "python"}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"name": "w", "runtime": "python", "config": {"A": NaN}}',
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json_is_400_on_create_and_patch(api: httpx.Client, body: bytes) -> None:
    worker = create(api)
    assert_error(api.post("/workers", content=body, headers=JSON), 400, "malformed_json")
    response = api.patch(f"/workers/{worker['id']}", content=body, headers=JSON)
    assert_error(response, 400, "malformed_json")
    assert total(api) == 1
    assert api.get(f"/workers/{worker['id']}").json() == worker


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"w"', b"3"])
def test_body_that_is_not_an_object_is_422(api: httpx.Client, body: bytes) -> None:
    assert field_errors(api.post("/workers", content=body, headers=JSON)) == ["body"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""]
)
def test_non_json_content_type_is_415(api: httpx.Client, content_type: str) -> None:
    worker = create(api)
    body = b'{"name": "x", "runtime": "python"}'
    headers = {"content-type": content_type}
    assert_error(api.post("/workers", content=body, headers=headers), 415)
    assert_error(api.patch(f"/workers/{worker['id']}", content=body, headers=headers), 415)
    assert total(api) == 1
    assert api.get(f"/workers/{worker['id']}").json()["name"] == "w"


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge-patch+json"]
)
def test_json_media_type_variants_are_accepted(api: httpx.Client, content_type: str) -> None:
    body = b'{"name": "x", "runtime": "python"}'
    assert api.post("/workers", content=body, headers={"content-type": content_type}).is_success


def _padded_body(size: int) -> bytes:
    head, tail = b'{"name": "w", "runtime": "python", "source_code": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_over_2_mib_is_413(api: httpx.Client) -> None:
    limit = 2 * 1024 * 1024
    assert_error(api.post("/workers", content=_padded_body(limit + 1), headers=JSON), 413)
    # exactly at the limit it is read and validated (source_code max is 1 MiB)
    assert field_errors(api.post("/workers", content=_padded_body(limit), headers=JSON))
    assert total(api) == 0


def test_chunked_body_over_2_mib_is_413(api: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "w", "runtime": "python", "source_code": "'
        for _ in range(33):
            yield b"x" * 65_536
        yield b'"}'

    assert_error(api.post("/workers", content=chunks(), headers=JSON), 413)
    assert total(api) == 0


def test_unknown_route_and_method_use_the_error_shape(api: httpx.Client) -> None:
    assert_error(api.get("/nothing-here"), 404)
    worker = create(api)
    assert_error(api.put(f"/workers/{worker['id']}", json={"name": "x"}), 405)


# --- get ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("worker_id", ["wkr_00000000000000000000000000", "nope", "x" * 300])
def test_get_unknown_worker_is_404(api: httpx.Client, worker_id: str) -> None:
    assert_error(api.get(f"/workers/{worker_id}"), 404, "worker_not_found")


# --- list: envelope, paging --------------------------------------------------------------------


def test_list_envelope_and_paging_cover_every_worker_once(api: httpx.Client) -> None:
    ids = [create(api, name=f"w{i}")["id"] for i in range(25)]
    first = api.get("/workers").json()
    assert set(first) == {"data", "meta"}
    assert first["meta"] == {"page": 1, "per_page": 20, "total": 25}
    second = api.get("/workers", params={"page": 2}).json()
    assert second["meta"] == {"page": 2, "per_page": 20, "total": 25}
    seen = [w["id"] for w in first["data"] + second["data"]]
    assert seen == list(reversed(ids))  # newest first, no gaps, no repeats
    small = [api.get("/workers", params={"page": p, "per_page": 7}).json() for p in (1, 4)]
    assert [len(page["data"]) for page in small] == [7, 4]
    assert small[1]["data"][-1]["id"] == ids[0]


def test_per_page_100_is_the_maximum(api: httpx.Client) -> None:
    create(api)
    body = api.get("/workers", params={"per_page": 100}).json()
    assert body["meta"] == {"page": 1, "per_page": 100, "total": 1}


@pytest.mark.parametrize("page", [2, 3, 1000])
def test_page_beyond_end_is_empty_with_total(api: httpx.Client, page: int) -> None:
    create(api)
    body = api.get("/workers", params={"page": page}).json()
    assert body == {"data": [], "meta": {"page": page, "per_page": 20, "total": 1}}


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": 0},
        {"per_page": 101},
        {"per_page": -1},
        {"per_page": "ten"},
        {"page": 0},
        {"page": -1},
        {"page": "one"},
        {"page": "1.5"},
        {"q": "q" * 201},
    ],
    ids=str,
)
def test_bad_paging_or_query_is_400(api: httpx.Client, params: dict[str, Any]) -> None:
    assert_error(api.get("/workers", params=params), 400)


# --- list: filters -----------------------------------------------------------------------------


@pytest.fixture
def three_statuses(api: httpx.Client) -> dict[str, str]:
    ids = {s: create(api, name=s)["id"] for s in ("active", "paused", "deprecated")}
    assert api.patch(f"/workers/{ids['paused']}", json={"status": "paused"}).is_success
    assert api.delete(f"/workers/{ids['deprecated']}").is_success
    return ids


def test_default_list_hides_deprecated(api: httpx.Client, three_statuses: dict[str, str]) -> None:
    assert names(api) == {"active", "paused"}
    assert total(api) == 2


@pytest.mark.parametrize("status", ["active", "paused", "deprecated"])
def test_filter_status(api: httpx.Client, three_statuses: dict[str, str], status: str) -> None:
    body = api.get("/workers", params={"filter[status]": status}).json()
    assert [w["id"] for w in body["data"]] == [three_statuses[status]]
    assert body["meta"]["total"] == 1


RUNTIMES = ["nodejs", "python", "deno", "shell", "wasm"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_filter_runtime(api: httpx.Client, runtime: str) -> None:
    for r in RUNTIMES:
        create(api, name=f"{r}-1", runtime=r)
        create(api, name=f"{r}-2", runtime=r)
    gone = create(api, name=f"{runtime}-gone", runtime=runtime)
    api.delete(f"/workers/{gone['id']}")
    assert names(api, **{"filter[runtime]": runtime}) == {f"{runtime}-1", f"{runtime}-2"}
    both = {"filter[runtime]": runtime, "filter[status]": "deprecated"}
    assert names(api, **both) == {f"{runtime}-gone"}


@pytest.mark.parametrize(
    "params",
    [
        {"filter[status]": "deleted"},
        {"filter[status]": "ACTIVE"},
        {"filter[status]": ""},
        {"filter[runtime]": "java"},
        {"filter[runtime]": "Python"},
        {"filter[runtime]": ""},
    ],
    ids=str,
)
def test_invalid_filter_value_is_400(api: httpx.Client, params: dict[str, str]) -> None:
    details = assert_error(api.get("/workers", params=params), 400)
    assert details[0]["field"] == next(iter(params))


@pytest.mark.parametrize("key", ["filter[name]", "filter[x]", "filter[]", "filter[tenant_id]"])
def test_unknown_filter_is_400(api: httpx.Client, key: str) -> None:
    assert_error(api.get("/workers", params={key: "y"}), 400, "invalid_filter")


@pytest.mark.parametrize("key", ["filter[status]", "filter[runtime]", "q", "page"])
def test_repeated_query_parameter_is_400(api: httpx.Client, key: str) -> None:
    values = {"filter[status]": "active", "filter[runtime]": "python", "q": "w", "page": "1"}
    response = api.get("/workers", params=[(key, values[key]), (key, values[key])])
    assert_error(response, 400)


# --- list: search ------------------------------------------------------------------------------

SEARCHABLE = [
    "Incident enrichment pipeline",
    "Slack notifier",
    "100%_done",
    "under_score",
    "percent%sign",
    'say "hi" AND bye*',
    "Überwachung Größe",
    "Ab",
]


@pytest.fixture
def searchable(api: httpx.Client) -> list[str]:
    for name in SEARCHABLE:
        create(api, name=name)
    return SEARCHABLE


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # three or more characters: the trigram index
        ("incident", {"Incident enrichment pipeline"}),
        ("INCIDENT", {"Incident enrichment pipeline"}),
        ("RiChMeNt", {"Incident enrichment pipeline"}),
        ("ack not", {"Slack notifier"}),
        ("0%_", {"100%_done"}),
        ("r_s", {"under_score"}),
        ("t%s", {"percent%sign"}),
        ("%_d", {"100%_done"}),
        ('"hi"', {'say "hi" AND bye*'}),
        ("AND bye*", {'say "hi" AND bye*'}),
        ("überwachung", {"Überwachung Größe"}),
        ("GRÖSSE", set()),
        ("größe", {"Überwachung Größe"}),
        ("zzz", set()),
        # one or two characters: a LIKE over the tenant's rows, wildcards taken literally
        ("%", {"100%_done", "percent%sign"}),
        ("_", {"100%_done", "under_score"}),
        ("%_", {"100%_done"}),
        ("ab", {"Ab"}),
        ("AB", {"Ab"}),
        ("ip", {"Incident enrichment pipeline"}),
        (
            "i",
            {"Incident enrichment pipeline", "Slack notifier", "percent%sign", 'say "hi" AND bye*'},
        ),
        ('"', {'say "hi" AND bye*'}),
        ("\\", set()),
        ("q", set()),
    ],
    ids=repr,
)
def test_q_matches_names_by_substring_ignoring_case(
    api: httpx.Client, searchable: list[str], q: str, expected: set[str]
) -> None:
    assert expected == {n for n in searchable if q.lower() in n.lower()}  # the oracle agrees
    body = api.get("/workers", params={"q": q, "per_page": 100}).json()
    assert {w["name"] for w in body["data"]} == expected
    assert body["meta"]["total"] == len(expected)


def test_q_combines_with_filters_and_follows_renames(api: httpx.Client) -> None:
    keep = create(api, name="report builder", runtime="python")
    create(api, name="report sender", runtime="nodejs")
    old = create(api, name="report archive", runtime="python")
    api.delete(f"/workers/{old['id']}")
    assert names(api, q="report", **{"filter[runtime]": "python"}) == {"report builder"}
    assert names(api, q="re", **{"filter[runtime]": "python"}) == {"report builder"}
    assert names(api, q="report", **{"filter[status]": "deprecated"}) == {"report archive"}
    api.patch(f"/workers/{keep['id']}", json={"name": "digest maker"})
    assert names(api, q="builder") == set()
    assert names(api, q="digest") == {"digest maker"}
    assert names(api, q="report") == {"report sender"}


def test_q_pages_like_any_list(api: httpx.Client) -> None:
    for i in range(5):
        create(api, name=f"match {i}")
        create(api, name=f"other {i}")
    body = api.get("/workers", params={"q": "match", "per_page": 2, "page": 3}).json()
    assert body["meta"] == {"page": 3, "per_page": 2, "total": 5}
    assert [w["name"] for w in body["data"]] == ["match 0"]


# --- patch -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "renamed"},
        {"description": "does things"},
        {"status": "paused"},
        {"timeout_seconds": 3600},
        {"max_retries": 5},
        {"memory_mb": 512},
        {"cpus": 0.5},
        {"network": "none"},
        {"max_concurrency": 3},
        {"secrets": ["NEW_TOKEN"]},
    ],
    ids=str,
)
def test_patch_changes_only_the_given_fields(api: httpx.Client, fields: dict[str, Any]) -> None:
    before = create(api, source_code="x = 1")
    response = api.patch(f"/workers/{before['id']}", json=fields)
    assert response.status_code == 200, response.text
    after = response.json()
    assert after == api.get(f"/workers/{before['id']}").json()
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {*fields, "updated_at"}
    assert {k: after[k] for k in fields} == fields
    assert after["version"] == 1
    assert after["updated_at"] > before["updated_at"]


def test_patch_status_paused_then_active(api: httpx.Client) -> None:
    worker = create(api)
    assert (
        api.patch(f"/workers/{worker['id']}", json={"status": "paused"}).json()["status"]
        == "paused"
    )
    assert (
        api.patch(f"/workers/{worker['id']}", json={"status": "active"}).json()["status"]
        == "active"
    )


def test_patch_max_concurrency_null_means_unlimited(api: httpx.Client) -> None:
    worker = create(api, max_concurrency=2)
    response = api.patch(f"/workers/{worker['id']}", json={"max_concurrency": None})
    assert response.json()["max_concurrency"] is None


def test_patch_config_merges_and_null_removes(api: httpx.Client) -> None:
    worker = create(api, config={"A": "1", "B": 2, "C": True})
    patch = {"config": {"B": None, "A": "x", "D": 1.5, "NEVER_SET": None}}
    response = api.patch(f"/workers/{worker['id']}", json=patch)
    assert response.json()["config"] == {"A": "x", "C": True, "D": 1.5}
    assert api.get(f"/workers/{worker['id']}").json()["config"] == {"A": "x", "C": True, "D": 1.5}
    assert response.json()["version"] == 1


@pytest.mark.parametrize(
    ("patches", "version"),
    [
        ([{"source_code": "v2"}], 2),
        ([{"source_code": "v1"}], 1),  # unchanged source: same version
        ([{"entrypoint": "app.py"}], 2),
        ([{"entrypoint": "main.py"}], 1),
        ([{"source_code": "v2", "entrypoint": "app.py"}], 2),
        ([{"source_code": "v2"}, {"source_code": "v3"}, {"entrypoint": "x.py"}], 4),
        ([{"name": "n", "config": {"A": 1}, "status": "paused", "timeout_seconds": 9}], 1),
    ],
    ids=str,
)
def test_version_increments_only_on_source_change(
    api: httpx.Client, patches: list[dict[str, Any]], version: int
) -> None:
    worker = create(api, source_code="v1")
    for patch in patches:
        response = api.patch(f"/workers/{worker['id']}", json=patch)
        assert response.status_code == 200, response.text
    assert response.json()["version"] == version
    assert api.get(f"/workers/{worker['id']}").json()["version"] == version


def test_patch_empty_body_changes_nothing_but_updated_at(api: httpx.Client) -> None:
    worker = create(api)
    after = api.patch(f"/workers/{worker['id']}", json={}).json()
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in worker.items() if k != "updated_at"
    }


INVALID_PATCH: list[tuple[dict[str, Any], str]] = [
    ({"status": "deprecated"}, "status"),
    ({"status": "archived"}, "status"),
    ({"name": ""}, "name"),
    ({"name": " \t "}, "name"),
    ({"name": None}, "name"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 3601}, "timeout_seconds"),
    ({"max_retries": 6}, "max_retries"),
    ({"memory_mb": 8193}, "memory_mb"),
    ({"cpus": 0}, "cpus"),
    ({"network": "host"}, "network"),
    ({"max_concurrency": 0}, "max_concurrency"),
    ({"entrypoint": "../x"}, "entrypoint"),
    ({"config": {"bad-key": "v"}}, "config.bad-key"),
    ({"config": {"AVA_X": "v"}}, "config.AVA_X"),
    ({"config": {"A": {"b": 1}}}, "config"),
    ({"secrets": "TOKEN"}, "secrets"),
    ({"secrets": ["no spaces"]}, "secrets.no spaces"),
    ({"secrets": ["A", "A"]}, "secrets"),
    ({"id": "wkr_other"}, "id"),
    ({"tenant_id": "ten_other"}, "tenant_id"),
    ({"version": 7}, "version"),
    ({"created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ({"updated_at": "2020-01-01T00:00:00Z"}, "updated_at"),
    ({"created_by": "usr_other"}, "created_by"),
    ({"runtime": "nodejs"}, "runtime"),
    ({"name": "ok", "version": 7}, "version"),
]


@pytest.mark.parametrize(
    ("patch", "field"), INVALID_PATCH, ids=[f"{f}:{str(p)[:40]}" for p, f in INVALID_PATCH]
)
def test_patch_rejects_invalid_fields_and_changes_nothing(
    api: httpx.Client, patch: dict[str, Any], field: str
) -> None:
    worker = create(api, config={"A": 1})
    reported = field_errors(api.patch(f"/workers/{worker['id']}", json=patch))
    assert any(f == field or f.startswith(field) for f in reported), reported
    assert api.get(f"/workers/{worker['id']}").json() == worker


def test_patch_wasm_source_is_checked(api: httpx.Client) -> None:
    worker = create(api, runtime="wasm", source_code=WASM_MODULE)
    assert field_errors(api.patch(f"/workers/{worker['id']}", json={"source_code": "x"})) == [
        "source_code"
    ]


def test_patch_unknown_worker_is_404(api: httpx.Client) -> None:
    assert_error(api.patch("/workers/wkr_missing", json={"name": "x"}), 404, "worker_not_found")


# --- delete ------------------------------------------------------------------------------------


def test_delete_is_a_soft_delete(api: httpx.Client) -> None:
    worker = create(api, source_code="x")
    response = api.delete(f"/workers/{worker['id']}")
    assert response.status_code == 200, response.text
    deleted = response.json()
    assert deleted["status"] == "deprecated"
    assert {k: v for k, v in deleted.items() if k not in ("status", "updated_at")} == {
        k: v for k, v in worker.items() if k not in ("status", "updated_at")
    }
    assert api.get(f"/workers/{worker['id']}").json() == deleted
    assert total(api) == 0
    listed = api.get("/workers", params={"filter[status]": "deprecated"}).json()["data"]
    assert listed == [deleted]
    again = api.delete(f"/workers/{worker['id']}")
    assert again.status_code == 200
    assert again.json() == deleted  # a repeat changes nothing, not even updated_at


def test_delete_unknown_worker_is_404(api: httpx.Client) -> None:
    assert_error(api.delete("/workers/wkr_missing"), 404, "worker_not_found")


@pytest.mark.parametrize(
    "patch",
    [{"name": "x"}, {"status": "active"}, {"status": "paused"}, {"source_code": "y"}, {}],
    ids=str,
)
def test_deprecated_worker_cannot_be_patched(api: httpx.Client, patch: dict[str, Any]) -> None:
    worker = create(api)
    deleted = api.delete(f"/workers/{worker['id']}").json()
    assert_error(api.patch(f"/workers/{worker['id']}", json=patch), 409, "worker_deprecated")
    assert api.get(f"/workers/{worker['id']}").json() == deleted


# --- concurrency -------------------------------------------------------------------------------


@pytest.fixture
def async_api(api: httpx.Client) -> Callable[[], httpx.AsyncClient]:
    return lambda: httpx.AsyncClient(base_url=api.base_url, headers=api.headers, timeout=30)


async def test_concurrent_patches_lose_nothing(
    api: httpx.Client, async_api: Callable[[], httpx.AsyncClient]
) -> None:
    worker = create(api, source_code="v0")
    url = f"/workers/{worker['id']}"
    async with async_api() as client:
        sources = [client.patch(url, json={"source_code": f"v{i + 1}"}) for i in range(6)]
        configs = [client.patch(url, json={"config": {f"K{i}": i}}) for i in range(6)]
        responses = await asyncio.gather(*sources, *configs)
        final = (await client.get(url)).json()
    assert [r.status_code for r in responses] == [200] * 12
    assert final["version"] == 7
    assert final["config"] == {f"K{i}": i for i in range(6)}


async def test_patch_racing_delete_never_revives_or_loses_a_change(
    api: httpx.Client, async_api: Callable[[], httpx.AsyncClient]
) -> None:
    async with async_api() as client:
        for i in range(10):
            created = await client.post("/workers", json={"name": "w", "runtime": "python"})
            url = f"/workers/{created.json()['id']}"
            calls = [client.patch(url, json={"status": "active", "name": "n"}), client.delete(url)]
            order = 1 if i % 2 else -1  # the patch is sent first, then the delete first
            patch, delete = (await asyncio.gather(*calls[::order]))[::order]
            final = (await client.get(url)).json()
            assert delete.status_code == 200
            assert final["status"] == "deprecated"
            if patch.status_code == 200:  # the patch went first: its change must survive
                assert final["name"] == "n"
            else:
                assert_error(patch, 409, "worker_deprecated")


# --- OpenAPI -----------------------------------------------------------------------------------


def _descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield value
            yield from _descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _descriptions(item)


SEED_DESCRIPTIONS = [
    "Human-readable worker name.",
    "What this worker does.",
    'File path within source bundle (e.g. "index.js"). Defaults to runtime convention.',
    "Non-secret config key/value pairs injected as environment variables.",
    "Secret key names to inject at runtime. Values are set separately via the secrets vault.",
    "Max execution time. Default 300, max 3600.",
    "Auto-retry on failure. Default 0, max 5.",
    "Search workers by name.",
    "active | paused — change without modifying code.",
    "nodejs | python | deno | shell | wasm",
    "active | paused | deprecated",
]


def test_openapi_document_has_routes_and_seed_descriptions(server_url: str) -> None:
    response = httpx.get(f"{server_url}/docs/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/ava/workers", "/v1/ava/workers/{worker_id}"} <= set(doc["paths"])
    assert set(doc["paths"]["/v1/ava/workers/{worker_id}"]) >= {"get", "patch", "delete"}
    texts = set(_descriptions(doc))
    missing = [d for d in SEED_DESCRIPTIONS if not any(d in t for t in texts)]
    assert missing == []
    schemas = doc["components"]["schemas"]
    assert any("timeout_seconds" in s.get("properties", {}) for s in schemas.values())


def test_docs_page_is_served(server_url: str) -> None:
    response = httpx.get(f"{server_url}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in response.text
    # the page loads the document by URL (no inline script: see test_docs_offline.py)
    assert 'data-spec-url="/docs/openapi.json"' in response.text
    document = httpx.get(f"{server_url}/docs/openapi.json").text
    assert "Human-readable worker name." in document
