"""Secrets in real jobs: the value reaches the handler through the stdin envelope only (never the
container's environment or labels), every log line is redacted of it in each encoding and when
split across writes (logs API and SSE alike), a missing secret fails the job at once, and the
platform's own log never shows the value."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Ava
from tests.support import headers, process_server, server_log

pytestmark = pytest.mark.docker

LEAKY = """
import base64, json, sys, time, urllib.parse

def handler(input, env):
    time.sleep(input.get("s", 0))
    v = env["API_TOKEN"]
    print("raw", v)
    print("b64", base64.b64encode(v.encode()).decode())
    print("b64-unpadded", base64.b64encode(v.encode()).decode().rstrip("="))
    print("b64url", base64.urlsafe_b64encode(v.encode()).decode())
    print("b64url-unpadded", base64.urlsafe_b64encode(v.encode()).decode().rstrip("="))
    print("url", urllib.parse.quote(v, safe=""))
    print("url-plus", urllib.parse.quote_plus(v, safe=""))
    print("json", json.dumps(v))
    half = len(v) // 2
    sys.stdout.write("split " + v[:half]); sys.stdout.flush(); time.sleep(0.3)
    sys.stdout.write(v[half:] + " end\\n"); sys.stdout.flush()
    print("stderr", v, file=sys.stderr)
    return {"length": len(v)}
"""


def secret_value() -> str:
    # a space, '+', '/', '&', '=' and a non-ASCII letter: every encoding differs from the raw
    # value, and the base64 forms have padding to strip
    return f"tok/{uuid.uuid4().hex[:12]}+? &é="  # 23 bytes


def forms(value: str) -> list[str]:
    raw = value.encode()
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    found = [
        value,
        std,
        std.rstrip("="),
        url,
        url.rstrip("="),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
    ]
    assert len(set(found)) == len(found), "each form must be a distinct string"
    return found


def leaky_worker(ava: Ava, value: str) -> str:
    assert ava.client.put("/secrets/API_TOKEN", json={"value": value}).status_code == 201
    return str(ava.worker("python", LEAKY, secrets=["API_TOKEN"])["id"])


def sse_lines(client: httpx.Client, job_id: str) -> list[str]:
    lines: list[str] = []
    with client.stream("GET", f"/jobs/{job_id}/logs", params={"follow": "true"}) as resp:
        assert resp.status_code == 200
        event = ""
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "log":
                lines.append(json.loads(line[5:])["line"])
            elif line.startswith("data:") and event == "end":
                break
    return lines


def test_secret_reaches_the_handler_and_every_log_line_is_redacted(ava: Ava) -> None:
    value = secret_value()
    worker_id = leaky_worker(ava, value)
    job = ava.run(worker_id)
    assert job["status"] == "succeeded", (job, ava.logs(job["id"]))
    assert job["result"] == {"length": len(value)}  # the handler saw the real value
    text = ava.logs(job["id"])
    ndjson = ava.client.get(f"/jobs/{job['id']}/logs", headers={"accept": "application/x-ndjson"})
    streamed = "\n".join(sse_lines(ava.client, job["id"]))
    for view in (text, ndjson.text, streamed):
        for form in forms(value):
            assert form not in view
    expected = [
        "raw ***",
        "b64 ***",
        "b64-unpadded ***",
        "b64url ***",
        "b64url-unpadded ***",
        "url ***",
        "url-plus ***",
        'json "***"',
        "split *** end",
        "stderr ***",
    ]
    # stdout and stderr are two streams: their relative order is not guaranteed
    assert sorted(text.splitlines()) == sorted(expected)
    assert sorted(streamed.splitlines()) == sorted(expected)


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)
PEM_LEAKY = """
import json

def handler(input, env):
    pem = env["PEM"]
    if input.get("print"):
        print(pem)
        print(json.dumps(env))
        print(env)
        return {"echo": pem, "lines": pem.splitlines()}
    if input.get("pad"):
        raise ValueError("x" * input["pad"] + env["TOKEN24"] + "y" * 300)
    raise ValueError("pem " + pem)
"""


def pem_pieces() -> list[str]:
    return [line for line in PEM.splitlines() if line] + [" ".join(PEM.split())]


def test_a_multi_line_secret_leaks_through_no_log_error_or_result(ava: Ava) -> None:
    token = uuid.uuid4().hex[:24]
    for name, secret in (("PEM", PEM), ("TOKEN24", token)):
        assert ava.client.put(f"/secrets/{name}", json={"value": secret}).status_code == 201
    worker = ava.worker("python", PEM_LEAKY, secrets=["PEM", "TOKEN24"], max_retries=0)
    printed = ava.run(worker["id"], {"print": True})
    assert printed["status"] == "succeeded", printed
    raised = ava.run(worker["id"], {})
    cut = ava.run(worker["id"], {"pad": 1976})
    assert raised["status"] == cut["status"] == "failed"
    assert raised["error"]["message"] == "ValueError: pem ***"
    assert cut["error"]["message"].endswith("…[cut]") and len(cut["error"]["message"]) <= 2000
    assert token[:4] not in cut["error"]["message"].replace("x", "")
    views = [json.dumps(printed["result"]), json.dumps(raised), json.dumps(cut)]
    views += [ava.logs(j["id"]) for j in (printed, raised, cut)]
    views.append(
        ava.client.get(
            f"/jobs/{printed['id']}/logs", headers={"accept": "application/x-ndjson"}
        ).text
    )
    for view in views:
        for piece in [*pem_pieces(), json.dumps(PEM)[1:-1], token]:
            assert piece not in view, (piece, view[:500])
    assert printed["result"]["lines"] == ["***"] * 4


def test_secret_is_never_in_the_container_env_or_labels(ava: Ava) -> None:
    value = secret_value()
    worker_id = leaky_worker(ava, value)
    job = ava.trigger(worker_id, {"s": 3}).json()
    deadline = time.monotonic() + 30
    inspected = ""
    while time.monotonic() < deadline and not inspected:
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=ava.job_id={job['id']}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if ids:
            inspected = subprocess.run(
                ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True
            ).stdout
        time.sleep(0.1)
    assert inspected, "the job's container was never seen running"
    config = json.loads(inspected)[0]["Config"]
    assert "API_TOKEN" not in json.dumps(config["Env"])
    for form in forms(value):
        assert form not in inspected
    assert ava.wait_for(job["id"])["status"] == "succeeded"


def test_a_missing_secret_fails_the_job_at_once(ava: Ava) -> None:
    worker = ava.worker(
        "python", "def handler(i, e):\n    return 1\n", secrets=["NOT_SET_ANYWHERE"]
    )
    started = time.monotonic()
    job = ava.run(worker["id"])
    assert time.monotonic() - started < 10
    assert job["status"] == "failed"
    assert job["error"]["type"] == "missing_secret"
    assert "NOT_SET_ANYWHERE" in job["error"]["message"]
    assert ava.logs(job["id"]) == ""
    assert [a["exit_code"] for a in job["attempts"]] == [None]  # no container ran


def test_no_secret_value_in_the_platforms_own_log(
    runtime_images: list[str], tmp_path: Path
) -> None:
    value = secret_value()
    with process_server(tmp_path / "ava.db") as (url, proc):
        h = headers()
        with httpx.Client(base_url=f"{url}/v1/ava", headers=h, timeout=60) as client:
            ava = Ava(client)
            worker_id = leaky_worker(ava, value)
            assert ava.run(worker_id)["status"] == "succeeded"
            client.put("/secrets/API_TOKEN", json={"value": value + "-2"})
            client.put("/secrets/BAD NAME", json={"value": value})
        proc.terminate()
        proc.wait(timeout=30)
    log = server_log(tmp_path / "ava.db").read_text(errors="replace")
    assert "attempt_finished" in log  # the log was captured
    for form in forms(value):
        assert form not in log
