"""/docs in a real browser: Swagger UI renders the OpenAPI 3.1 document, with nothing fetched
from outside the platform."""

from __future__ import annotations

from playwright.sync_api import Page, Request

from tests.browser.conftest import screenshot


def test_docs_render_their_operations_from_the_platform_alone(page: Page, server_url: str) -> None:
    fetched: list[str] = []
    page.on(
        "request",
        lambda request: fetched.append(request.url) if isinstance(request, Request) else None,
    )
    page.goto(f"{server_url}/docs")
    page.locator(".opblock").first.wait_for()
    assert "Unable to render" not in page.content()
    summaries = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/v1/ava/workers" in summaries
    assert "/v1/ava/jobs/{job_id}/logs" in summaries
    assert page.locator(".opblock").count() >= 20
    page.get_by_role("button", name="Authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.wait_for()
    for header in ("x-internal-secret", "x-tenant-id", "x-user-id", "x-platform-role"):
        assert header in dialog.inner_text(), header
    dialog.locator("button.btn-done").first.click()
    dialog.wait_for(state="detached")
    page.locator("#operations-workers-V1AvaWorkersCreateWorker").click()
    page.get_by_text("Incident enrichment pipeline").first.wait_for()
    screenshot(page, "docs")
    assert fetched and all(url.startswith(server_url) for url in fetched), fetched
