"""Browser tests: Playwright driving Debian's chromium against a live test server."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

# Playwright's sync API keeps an event loop in the test thread; Django's ORM calls from
# the test body are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Every browser context is this size, so the screenshots are too.
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page, name: str) -> None:
    """With SCREENSHOTS=1 (`make screenshots`), save what the page shows now as
    docs/screenshots/<name>.png: the README's and the docs' pictures are the pages as the
    tests leave them, so they stay current. A no-op otherwise. Call it with a literal name:
    tests/test_docs.py reads the calls to know which pictures a browser test writes."""
    if os.environ.get("SCREENSHOTS") != "1":
        return
    assert page.viewport_size == VIEWPORT, page.viewport_size
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS_DIR / f"{name}.png", animations="disabled", caret="hide")


@pytest.fixture(scope="session")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; `make test` does it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Every page records the Content-Security-Policy violations the browser reports.
RECORD_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI} on ${document.URL}`);
});
"""


@pytest.fixture
def page(browser, live_server):
    """A browser page; the test fails if any page it visited reported a CSP violation."""
    context = browser.new_context(base_url=live_server.url, timezone_id="Europe/Berlin", viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "CSP violation" in message.text or "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)


def log_in(page, user):
    page.goto("/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))  # the home page, not /login/ again
    return page


@pytest.fixture
def login(page):
    return lambda user: log_in(page, user)
