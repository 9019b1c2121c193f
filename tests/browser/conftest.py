"""Fixtures for the dashboard and docs in headless Chromium: Debian's own binary (installed by
scripts/ensure-chromium.sh from `make test`), driven by Playwright, which downloads no browser.

One real server and one browser for the module; each test gets a fresh browser context (its
own session storage) and a fresh tenant, and fails on any dialog, page error or CSP report."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Playwright, sync_playwright

from tests.integration.conftest import FAST_RETRY_ENV
from tests.support import ROOT, SECRET, headers, thread_server

CHROMIUM = os.environ.get("AVA_TEST_CHROMIUM", "/usr/bin/chromium")
# this machine's network is closed: without these, Chromium keeps trying to reach its vendor
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
WAIT_MS = 15_000


# package scope: Playwright's sync driver keeps an event loop running in the main thread while
# it is open, and every later test that calls asyncio.run() (the PostgreSQL fixture, the MCP
# client) would fail; it must end with the browser tier, not with the session
@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    chromium = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture(scope="package")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on a real engine (the python runtime image, built if missing)."""
    from ava_platform.executor.runtime_images import build_images

    build_images(["python"], log=lambda _line: None)
    # webhooks to a receiver the test runs on loopback
    env = {**FAST_RETRY_ENV, "AVA_WEBHOOK_ALLOW_PRIVATE": "1"}
    with thread_server(tmp_path_factory.mktemp("ui") / "ava.db", **env) as url:
        yield url


@dataclass
class Watched:
    """What a page did that no page of ours should do."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(self, message: ConsoleMessage) -> None:
        # a 4xx the page asked for and shows (a wrong secret) is logged by Chromium too
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(browser: Browser, watched: Watched) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.on("dialog", watched.on_dialog)
    tab.on("console", watched.on_console)
    tab.on("pageerror", lambda error: watched.errors.append(str(error)))
    yield tab
    context.close()
    assert watched.dialogs == [], "a page opened a dialog: script ran that should not have"
    assert watched.errors == [], "the page reported errors (a CSP violation shows here too)"


@dataclass
class Tenant:
    """A fresh tenant on the server: API calls for set-up, and its identity for signing in."""

    url: str
    auth: dict[str, str]

    @property
    def id(self) -> str:
        return self.auth["x-tenant-id"]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(
            method, f"{self.url}/v1/ava{path}", headers=self.auth, timeout=30, **kwargs
        )
        assert answer.status_code < 300, answer.text
        return answer.json()

    def worker(self, name: str, source: str, **fields: Any) -> dict[str, Any]:
        # no network: these jobs need none, and they start without touching the engine's bridge
        body = {"name": name, "runtime": "python", "source_code": source, "network": "none"}
        body.update(fields)
        worker: dict[str, Any] = self.call("POST", "/workers", json=body)
        return worker


@pytest.fixture
def tenant(ui_server: str) -> Tenant:
    return Tenant(ui_server, headers(role="tenant-admin"))


def sign_in(
    page: Page, url: str, tenant_id: str, *, role: str = "tenant-admin", secret: str = SECRET
) -> None:
    page.goto(f"{url}/ui")
    page.get_by_label("Internal secret").fill(secret)
    page.get_by_label("Tenant").fill(tenant_id)
    page.get_by_label("User").fill("usr_browser")
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def signed_in(page: Page, tenant: Tenant) -> Callable[..., Page]:
    def go(role: str = "tenant-admin") -> Page:
        sign_in(page, tenant.url, tenant.id, role=role)
        page.get_by_role("heading", name="Workers").wait_for()
        return page

    return go


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
