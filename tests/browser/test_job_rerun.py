"""A finished job re-run from its page (the new job links back to the one it re-runs), its
webhook deliveries, the tenant's quota on the jobs list, and no Re-run for a viewer."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Tenant, screenshot, sign_in
from tests.support import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.docker

ECHO = "def handler(input, env):\n    return {'echo': input}\n"
FINISHED = {"succeeded", "failed", "timed_out", "cancelled"}


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[WebhookReceiver]]]:
    with webhook_receiver([]) as served:
        yield served


def _finished(tenant: Tenant, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = tenant.call("GET", f"/jobs/{job_id}")
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s}s")


def test_a_finished_job_is_rerun_from_its_page(
    signed_in: Callable[..., Page], tenant: Tenant, receiver: tuple[str, Any]
) -> None:
    hook, handler = receiver
    worker = tenant.worker("echo", ECHO, webhook_url=hook)
    first = tenant.call("POST", f"/workers/{worker['id']}/jobs", json={"input": {"n": 7}})
    assert _finished(tenant, first["id"])["status"] == "succeeded"
    page = signed_in()

    page.goto(f"{tenant.url}/ui#/jobs")
    quota = page.locator("section", has=page.get_by_role("heading", name="Tenant quota"))
    expect(quota).to_contain_text(re.compile(r"Queued\s*0 of at most \d+"))
    expect(quota).to_contain_text("Running")

    page.goto(f"{tenant.url}/ui#/jobs/{first['id']}")
    sent = page.locator("section", has=page.get_by_role("heading", name="Webhook deliveries"))
    expect(sent).to_contain_text(hook)
    expect(sent.locator("tbody tr")).to_have_count(1)
    expect(sent.locator(".badge")).to_have_text("delivered")
    expect(sent).to_contain_text("HTTP 200")
    assert handler.seen, "the receiver got the delivery the page shows"

    page.get_by_role("button", name="Re-run").click()
    page.wait_for_url(re.compile(r".*#/jobs/job_[A-Za-z0-9]+$"))
    expect(page.locator("h1 code")).not_to_have_text(first["id"])
    rerun_id = page.url.rsplit("/", 1)[1]
    assert tenant.call("GET", f"/jobs/{rerun_id}")["rerun_of"] == first["id"]
    summary = page.locator("section", has=page.get_by_role("heading", name="Summary"))
    expect(summary).to_contain_text("Re-run of")
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=60_000)
    given = page.locator("section", has=page.get_by_role("heading", name="Input"))
    expect(given).to_contain_text('"n": 7')  # the same input
    screenshot(page, "job-rerun")
    page.get_by_role("link", name=first["id"]).click()
    expect(page.locator("h1 code")).to_have_text(first["id"])

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, tenant.url, tenant.id, role="tenant-viewer")
    page.goto(f"{tenant.url}/ui#/jobs/{first['id']}")
    expect(page.get_by_role("heading", name="Logs")).to_be_visible()
    expect(page.get_by_role("heading", name="Webhook deliveries")).to_be_visible()
    expect(page.get_by_role("button", name="Re-run")).to_have_count(0)
