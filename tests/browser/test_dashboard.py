"""The dashboard as a person uses it, in headless Chromium against a real server whose jobs run
in real containers: signing in, finding a worker, running it and watching its logs arrive, a
failed job's error, what a viewer may not do, and names and logs that hold HTML."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WAIT_MS, Tenant, Watched, screenshot, sign_in
from tests.support import ROOT

pytestmark = pytest.mark.docker

TICKS = """
import time

def handler(input, env):
    for n in range(input["lines"]):
        print(f"tick {n}", flush=True)
        time.sleep(0.2)
    return {"ticks": input["lines"]}
"""
FAILS = """
def handler(input, env):
    raise ValueError("no incident_id in the input")
"""
PRINTS_HTML = """
import sys

def handler(input, env):
    print("<script>alert('from a log')</script>", flush=True)
    print("<b>bold?</b>", file=sys.stderr, flush=True)
    return {"html": "<img src=x onerror=alert(3)>"}
"""
README_SCREENSHOT = ROOT / "docs" / "images" / "job-page.png"


def _job_id(page: Page) -> str:
    page.wait_for_url(re.compile(r".*#/jobs/job_[A-Za-z0-9]+$"))
    return page.url.rsplit("/", 1)[1]


def test_sign_in_keeps_the_identity_in_session_storage_only(page: Page, tenant: Tenant) -> None:
    sign_in(page, tenant.url, tenant.id)
    expect(page.get_by_role("heading", name="Workers")).to_be_visible()
    expect(page.get_by_text(f"usr_browser · {tenant.id} · tenant-admin")).to_be_visible()
    stored = page.evaluate("() => [sessionStorage.length, localStorage.length, document.cookie]")
    assert stored == [1, 0, ""]
    assert "secret" not in page.url
    assert page.context.cookies() == []


def test_a_wrong_secret_shows_the_apis_message_and_stays_on_the_form(
    page: Page, tenant: Tenant
) -> None:
    sign_in(page, tenant.url, tenant.id, secret="not-the-secret")
    expect(page.get_by_role("alert")).to_have_text("missing or wrong x-internal-secret")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    screenshot(page, "sign-in-refused")


def test_a_worker_is_found_by_search(signed_in: Callable[..., Page], tenant: Tenant) -> None:
    for name in ("alpha-report", "beta-sync", "gamma-digest"):
        tenant.worker(name, "def handler(i, e): return i")
    page = signed_in()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    page.get_by_label("Search").fill("beta")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("beta-sync")
    expect(rows.first).to_contain_text("python")
    expect(rows.first).to_contain_text("active")
    screenshot(page, "workers")
    rows.first.get_by_role("link", name="beta-sync").click()
    expect(page.get_by_role("heading", name="beta-sync")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 800})  # a phone-sized window
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "worker-narrow")


def test_a_run_with_json_input_streams_its_log_lines_while_it_runs(
    signed_in: Callable[..., Page], tenant: Tenant
) -> None:
    worker = tenant.worker("ticker", TICKS, config={"MODE": "demo"}, secrets=["API_TOKEN"])
    tenant.call("PUT", "/secrets/API_TOKEN", json={"value": "s3cr3t-value"})
    page = signed_in()
    page.goto(f"{tenant.url}/ui#/workers/{worker['id']}")
    expect(page.get_by_text("API_TOKEN")).to_be_visible()  # a secret's name, never its value
    page.get_by_label("Input (JSON)").fill('{"lines": 20}')
    page.get_by_role("button", name="Run").click()
    job_id = _job_id(page)
    lines = page.locator("#log-lines .log-line")
    expect(lines.first).to_contain_text("tick 0", timeout=60_000)
    # seen while the job still runs: the line came over the stream, not after the end
    status = tenant.call("GET", f"/jobs/{job_id}")["status"]
    seen = lines.count()
    assert status == "running" and seen < 20, (status, seen)
    expect(page.locator(".page-head .badge")).to_have_text("running")
    expect(lines).to_have_count(20, timeout=30_000)
    expect(lines.last).to_contain_text("tick 19")
    expect(lines.last.locator(".log-stream")).to_have_text("out")
    expect(page.locator(".page-head .badge")).to_have_text("succeeded")
    expect(page.locator("#log-state")).to_have_text("ended · 20 lines")
    expect(page.get_by_text('"ticks": 20')).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # it has ended
    path = screenshot(page, "job-page")
    if README_SCREENSHOT.parent.is_dir() and _wants_readme_screenshot():
        README_SCREENSHOT.write_bytes(path.read_bytes())


def _wants_readme_screenshot() -> bool:
    import os

    return os.environ.get("AVA_UPDATE_README_SCREENSHOT") == "1"


def test_a_failed_job_shows_its_error_type_and_message(
    signed_in: Callable[..., Page], tenant: Tenant
) -> None:
    worker = tenant.worker("fails", FAILS)
    job = tenant.call("POST", f"/workers/{worker['id']}/jobs", json={"input": {}})
    page = signed_in()
    page.goto(f"{tenant.url}/ui#/jobs/{job['id']}")
    expect(page.locator(".page-head .badge")).to_have_text("failed", timeout=60_000)
    error = tenant.call("GET", f"/jobs/{job['id']}")["error"]
    expect(page.locator(".error-type")).to_have_text(error["type"])
    expect(page.locator(".error-message")).to_contain_text("no incident_id in the input")
    expect(page.locator("#log-lines")).to_contain_text("ValueError")  # the traceback, on stderr
    expect(page.locator(".log-line.stderr").first).to_be_visible()
    screenshot(page, "job-failed")


def test_a_viewer_sees_no_run_or_cancel(signed_in: Callable[..., Page], tenant: Tenant) -> None:
    worker = tenant.worker("slow", "import time\ndef handler(i, e):\n    time.sleep(30)\n")
    job = tenant.call("POST", f"/workers/{worker['id']}/jobs", json={"input": {}})
    try:
        page = signed_in(role="tenant-viewer")
        page.goto(f"{tenant.url}/ui#/workers/{worker['id']}")
        expect(page.get_by_role("heading", name="Settings")).to_be_visible()
        expect(page.get_by_role("heading", name="Recent jobs")).to_be_visible()
        expect(page.get_by_role("button", name="Run")).to_have_count(0)
        expect(page.get_by_role("button", name="Pause")).to_have_count(0)
        page.goto(f"{tenant.url}/ui#/jobs/{job['id']}")
        expect(page.get_by_role("heading", name="Logs")).to_be_visible()
        expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
        # an operator may run and cancel: the same page shows Cancel to them
        page.get_by_role("button", name="Sign out").click()
        assert page.evaluate("() => sessionStorage.length") == 0
        sign_in(page, tenant.url, tenant.id, role="tenant-operator")
        page.goto(f"{tenant.url}/ui#/jobs/{job['id']}")
        page.get_by_role("button", name="Cancel").click()
        expect(page.locator(".page-head .badge")).to_have_text("cancelled", timeout=30_000)
    finally:
        httpx.post(f"{tenant.url}/v1/ava/jobs/{job['id']}/cancel", headers=tenant.auth, timeout=30)


def test_html_in_names_and_logs_is_shown_as_text_and_never_runs(
    signed_in: Callable[..., Page], tenant: Tenant, watched: Watched
) -> None:
    name = "<img src=x onerror=alert(1)>"
    tenant.worker(name, PRINTS_HTML, description="<script>alert(4)</script>")
    page = signed_in()
    expect(page.locator("tbody tr").first).to_contain_text(name)
    page.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.get_by_text("<script>alert(4)</script>")).to_be_visible()
    page.get_by_role("button", name="Run").click()
    _job_id(page)
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator(".log-line.stdout .log-text")).to_have_text(
        "<script>alert('from a log')</script>"
    )
    expect(page.locator(".log-line.stderr .log-text")).to_have_text("<b>bold?</b>")
    expect(page.get_by_text('"html": "<img src=x onerror=alert(3)>"')).to_be_visible()
    assert page.locator("main img, main script, main b").count() == 0
    time.sleep(0.3)  # an onerror handler would have fired by now
    assert watched.dialogs == []
    screenshot(page, "job-with-html")


def test_pages_are_served_with_a_strict_policy(tenant: Tenant) -> None:
    for path in ("/ui", "/ui/assets/app.js", "/docs"):
        answer = httpx.get(f"{tenant.url}{path}", timeout=WAIT_MS / 1000)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
    page = httpx.get(f"{tenant.url}/ui").text
    assert "style=" not in page and "<script>" not in page
    assert not re.search(r"""(src|href)=["']https?:""", page)  # nothing from elsewhere


def test_the_jobs_list_follows_jobs_as_they_run_and_filters_by_status(
    signed_in: Callable[..., Page], tenant: Tenant
) -> None:
    page = signed_in()
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_text("No jobs yet.")).to_be_visible()
    worker = tenant.worker(
        "short", "import time\ndef handler(i, e):\n    time.sleep(2)\n    return {}"
    )
    job = tenant.call("POST", f"/workers/{worker['id']}/jobs", json={"input": {}})
    row = page.locator("tbody tr", has_text=job["id"])
    expect(row).to_be_visible()  # no reload: the list refreshed itself
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=60_000)
    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_text("No failed jobs.")).to_be_visible()
    page.get_by_label("Status").select_option("succeeded")
    expect(page.locator("tbody tr")).to_have_count(1)
    screenshot(page, "jobs")


def test_a_worker_is_paused_and_resumed_from_its_page(
    signed_in: Callable[..., Page], tenant: Tenant
) -> None:
    worker = tenant.worker("pausable", "def handler(i, e): return i")
    page = signed_in()
    page.goto(f"{tenant.url}/ui#/workers/{worker['id']}")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".page-head .badge")).to_have_text("paused")
    expect(page.get_by_role("button", name="Run")).to_have_count(0)  # a paused worker runs nothing
    assert tenant.call("GET", f"/workers/{worker['id']}")["status"] == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".page-head .badge")).to_have_text("active")
    expect(page.get_by_role("button", name="Run")).to_be_visible()
