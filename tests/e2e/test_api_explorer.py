"""Browser: the API explorer (Swagger UI) renders under the portal's Content-Security-Policy,
lists the operations and runs one with the session's login."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_api_explorer_lists_the_operations_and_tries_one_out(login, viewer, page):
    login(viewer)
    page.get_by_test_id("main-nav").get_by_role("link", name="API", exact=True).click()
    audit_list = page.locator("#operations-audit-audit_list")
    expect(audit_list).to_contain_text("/api/v1/audit/", timeout=60_000)  # the schema is generated on first ask
    expect(page.locator("#operations-runs-runs_list")).to_be_visible()
    audit_list.locator(".opblock-summary").click()
    audit_list.get_by_role("button", name="Try it out").click()
    audit_list.get_by_role("button", name="Execute").click()
    live_response = audit_list.locator(".live-responses-table .response")
    expect(live_response.locator(".response-col_status")).to_have_text("200", timeout=30_000)
    expect(live_response.locator(".response-col_description")).to_contain_text('"results"')
