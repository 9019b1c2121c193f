"""Bad input gets a clear 4xx in the one error shape and changes nothing; never a 500, never a
driver's message, never a broken stream. Real HTTP to the real app on a real SQLite file, with
containers scripted (no Docker)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.scripted import scripted_server
from tests.support import headers

HUGE = "99999999999999999999999"  # beyond SQLite's signed 64-bit integers


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scripted_server(tmp_path_factory.mktemp("bad") / "ava.db", delay_s=0.01) as url:
        yield f"{url}/v1/ava"


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers=headers(), timeout=30) as c:
        yield c


def worker(client: httpx.Client) -> dict[str, Any]:
    body = {"name": "w", "runtime": "python", "source_code": "def handler(i, e): return i"}
    resp = client.post("/workers", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


# -- 1. integers beyond the store's range ----------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/build-log"])
@pytest.mark.parametrize("number", [HUGE, str(2**63), "-" + HUGE])
def test_a_version_number_beyond_the_store_is_not_found(
    client: httpx.Client, suffix: str, number: str
) -> None:
    wid = worker(client)["id"]
    assert_error(client.get(f"/workers/{wid}/versions/{number}{suffix}"), 404)
    assert client.get(f"/workers/{wid}/versions/1{suffix}").status_code == 200


@pytest.mark.parametrize("version", [1e20, 10**20, 2**63, 2**64 + 1])
def test_rollback_to_a_version_beyond_the_store_is_422_and_changes_nothing(
    client: httpx.Client, version: float
) -> None:
    created = worker(client)
    resp = client.post(f"/workers/{created['id']}/rollback", json={"version": version})
    error = assert_error(resp, 422, "validation_error")
    assert error["details"][0]["field"] == "version"
    assert client.get(f"/workers/{created['id']}").json() == created


@pytest.mark.parametrize(
    "params",
    [{"page": HUGE}, {"per_page": HUGE}, {"page": "-" + HUGE}, {"page": "1e400"}],
)
def test_paging_beyond_range_is_400(client: httpx.Client, params: dict[str, str]) -> None:
    assert_error(client.get("/workers", params=params), 400)
    assert_error(client.get("/jobs", params=params), 400)


@pytest.mark.parametrize("wait", [HUGE, "1e400", "-1", "nan", "61"])
def test_a_wait_out_of_range_is_400_and_queues_nothing(client: httpx.Client, wait: str) -> None:
    wid = worker(client)["id"]
    assert_error(client.post(f"/workers/{wid}/jobs", params={"wait": wait}, json={}), 400)
    assert client.get(f"/workers/{wid}/jobs").json()["meta"]["total"] == 0


# -- 2. control characters in a search, and no driver message ever ---------------------------


@pytest.mark.parametrize("q", ["\x00abc", "ab\x00", "\x00a", "abc\x1f", "x\x7fyz"])
def test_a_search_with_control_characters_is_400(client: httpx.Client, q: str) -> None:
    error = assert_error(client.get("/workers", params={"q": q}), 400, "bad_request")
    assert "control characters" in error["message"]


def test_a_store_error_answers_a_generic_message(client: httpx.Client) -> None:
    from ava_platform.api.errors import handle_ava_error
    from ava_platform.errors import StoreError

    class _Request:
        class url:
            path = "/v1/ava/workers"

    resp = handle_ava_error(_Request(), StoreError("unterminated string"))  # type: ignore[arg-type]
    assert resp.status_code == 500
    assert "unterminated" not in str(resp.content)
    assert resp.content["error"]["code"] == "store_error"


# -- 3. a cron expression that never fires --------------------------------------------------


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_occurs_is_422_and_stores_nothing(
    client: httpx.Client, cron: str
) -> None:
    wid = worker(client)["id"]
    resp = client.post(f"/workers/{wid}/schedules", json={"cron": cron})
    error = assert_error(resp, 422, "validation_error")
    assert error["details"][0]["field"] == "cron"
    assert "never occurs" in error["message"]
    assert client.get(f"/workers/{wid}/schedules").json()["meta"]["total"] == 0


# -- 4. Last-Event-ID: anything malformed or out of range replays from the start --------------


def finished_job(client: httpx.Client) -> str:
    wid = worker(client)["id"]
    job = client.post(f"/workers/{wid}/jobs", params={"wait": 20}, json={"input": {}}).json()
    assert job["status"] == "succeeded", job
    return str(job["id"])


def sse_events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.lstrip(" ")
        if fields:
            events.append(fields)
    return events


@pytest.mark.parametrize(
    "last_event_id",
    [
        b"99999999999999999999",
        b"9" * 5000,
        "²".encode(),  # a Unicode digit: str.isdigit() is True for it
        "²".encode("latin-1"),
        "\u0661".encode(),  # ARABIC-INDIC DIGIT ONE
        b"-1",
        b"abc",
        b"",
        b"0x10",
        b"1.5",
    ],
)
@pytest.mark.parametrize("how", ["accept", "follow"])
def test_a_bad_last_event_id_streams_every_line_from_the_start(
    client: httpx.Client, last_event_id: bytes, how: str
) -> None:
    job_id = finished_job(client)
    hdrs: dict[str, Any] = {"last-event-id": last_event_id}
    params = {}
    if how == "accept":
        hdrs["accept"] = "text/event-stream"
    else:
        params["follow"] = "true"
    resp = client.get(f"/jobs/{job_id}/logs", headers=hdrs, params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    logs = [e for e in events if e.get("event") == "log"]
    assert [json.loads(e["data"])["line"] for e in logs] == ["hello", "world"]
    assert events[-1]["event"] == "end" and "succeeded" in events[-1]["data"]


def test_a_valid_last_event_id_resumes_after_it(client: httpx.Client) -> None:
    job_id = finished_job(client)
    sse = {"accept": "text/event-stream"}
    first = sse_events(client.get(f"/jobs/{job_id}/logs", headers=sse).text)
    resumed = client.get(f"/jobs/{job_id}/logs", headers={**sse, "last-event-id": first[0]["id"]})
    logs = [e for e in sse_events(resumed.text) if e.get("event") == "log"]
    assert [e["id"] for e in logs] == [first[1]["id"]]
