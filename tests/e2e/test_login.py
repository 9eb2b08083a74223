from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXPECTED_NAV = {
    "viewer": {"Home", "Entities", "Runs", "Jobs", "Lineage", "SLAs", "Audit", "Dashboard", "API"},
    "operator": {
        "Home",
        "Entities",
        "Runs",
        "Jobs",
        "Lineage",
        "SLAs",
        "Audit",
        "Dashboard",
        "API",
        "Trigger run",
        "Notifications",
    },
    "approver": {"Home", "Entities", "Runs", "Jobs", "Lineage", "SLAs", "Audit", "Dashboard", "API", "Approvals"},
    "admin_user": {
        "Home",
        "Entities",
        "Runs",
        "Jobs",
        "Lineage",
        "SLAs",
        "Audit",
        "Dashboard",
        "API",
        "Trigger run",
        "Notifications",
        "Approvals",
        "Admin",
    },
}


@pytest.mark.parametrize("role", list(EXPECTED_NAV))
def test_each_role_logs_in_and_sees_its_navigation(request, login, role):
    user = request.getfixturevalue(role)
    page = login(user)
    links = page.get_by_test_id("main-nav").get_by_role("link").all_inner_texts()
    assert set(links) == EXPECTED_NAV[role]
    expect(page.get_by_text(user.username)).to_be_visible()


def test_audit_page_shows_the_login(login, viewer, page):
    login(viewer)
    page.get_by_test_id("main-nav").get_by_role("link", name="Audit", exact=True).click()
    row = page.get_by_test_id("audit-table").locator("tbody tr").first
    expect(row).to_contain_text("auth.login")
    expect(row).to_contain_text(viewer.username)


def test_wrong_password_shows_an_error_and_stays_logged_out(page, viewer):
    page.goto("/login/")
    page.get_by_label("Username").fill(viewer.username)
    page.get_by_label("Password").fill("not-the-password")
    screenshot(page, "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    page.goto("/audit/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/audit/$"))
