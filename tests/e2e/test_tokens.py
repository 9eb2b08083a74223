"""Browser: a user creates an API token on the tokens page, uses it, and revokes it."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def api_status(base_url: str, token: str) -> int:
    request = urllib.request.Request(f"{base_url}/api/v1/audit/", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_user_creates_a_token_uses_it_and_revokes_it(login, viewer, page, live_server):
    login(viewer)
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="Your tokens")).to_be_visible()
    page.get_by_label("Name").fill("airflow prod")
    page.get_by_label("Expires in (days)").fill("7")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("status")).to_contain_text("Copy it now: it is not shown again.")
    token = page.get_by_test_id("new-token").inner_text()
    assert api_status(live_server.url, token) == 200
    row = page.get_by_test_id("tokens-table").locator("tbody tr", has_text="airflow prod")
    expect(row).to_contain_text(f"{token[:10]}…")
    expect(row).to_contain_text("active")

    row.get_by_role("button", name="Revoke airflow prod").click()
    expect(page.locator(".messages")).to_contain_text(f"Token {token[:10]}… (airflow prod) revoked.")
    expect(page.get_by_test_id("tokens-table").locator("tbody tr", has_text="airflow prod")).to_contain_text("revoked")
    expect(page.get_by_test_id("new-token")).to_have_count(0)
    assert api_status(live_server.url, token) == 401
