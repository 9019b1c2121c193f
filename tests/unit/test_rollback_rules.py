"""Rollback only ever points a worker at something it can run. The v1 of a worker created
without `source_code` holds nothing: it is listed as `empty` (not `ready`), and a rollback to
it answers 409 `version_not_runnable` and leaves the worker as it was, still answering jobs."""

from __future__ import annotations

import httpx

HANDLER = "def handler(input, env):\n    return {'v': %d}\n"


def _worker_without_source(api: httpx.Client) -> str:
    created = api.post("/workers", json={"name": "no-source-yet", "runtime": "python"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _set_source(api: httpx.Client, worker_id: str, n: int) -> int:
    patched = api.patch(f"/workers/{worker_id}", json={"source_code": HANDLER % n})
    assert patched.status_code == 200, patched.text
    return int(patched.json()["version"])


def _statuses(api: httpx.Client, worker_id: str) -> dict[int, tuple[str, str, bool]]:
    listed = api.get(f"/workers/{worker_id}/versions")
    assert listed.status_code == 200, listed.text
    return {v["version"]: (v["kind"], v["status"], v["current"]) for v in listed.json()["data"]}


def test_a_version_without_source_is_listed_empty_not_ready(api: httpx.Client) -> None:
    wid = _worker_without_source(api)
    assert _statuses(api, wid) == {1: ("inline", "empty", True)}
    assert api.get(f"/workers/{wid}/versions/1").json()["status"] == "empty"
    assert _set_source(api, wid, 2) == 2
    assert _statuses(api, wid) == {2: ("inline", "ready", True), 1: ("inline", "empty", False)}


def test_rollback_to_an_empty_version_is_refused_and_changes_nothing(api: httpx.Client) -> None:
    wid = _worker_without_source(api)
    _set_source(api, wid, 2)
    refused = api.post(f"/workers/{wid}/rollback", json={"version": 1})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "version_not_runnable"
    assert "no source" in error["message"]
    worker = api.get(f"/workers/{wid}").json()
    assert worker["version"] == 2 and worker["source_code"] == HANDLER % 2
    # the worker still takes jobs (before the fix: 409 worker_has_no_source for every trigger)
    queued = api.post(f"/workers/{wid}/jobs", json={"input": {}})
    assert queued.status_code == 202, queued.text
    assert queued.json()["worker_version"] == 2


def test_rollback_to_an_earlier_version_with_source_still_works(api: httpx.Client) -> None:
    wid = _worker_without_source(api)
    _set_source(api, wid, 2)
    _set_source(api, wid, 3)
    moved = api.post(f"/workers/{wid}/rollback", json={"version": 2})
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2 and moved.json()["source_code"] == HANDLER % 2
    assert _statuses(api, wid)[2] == ("inline", "ready", True)


def test_the_api_document_names_the_empty_status(server_url: str) -> None:
    doc = httpx.get(f"{server_url}/docs/openapi.json", timeout=10).json()
    assert "empty" in doc["components"]["schemas"]["VersionStatus"]["enum"]
