"""One entity from rules through shadow and canary to dbt, by an operator and an approver
in two browsers, then rolled back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import wait_until
from tests.e2e.conftest import VIEWPORT, log_in, screenshot
from tests.entities.conftest import built_warehouse, entity_types, warehouse  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def request_mode(page: Page, mode: str, reason: str, percent: str = "") -> None:
    page.goto("/entities/users/")
    form = page.get_by_test_id("request-form")
    form.get_by_label("Mode").select_option(mode)
    if percent:
        form.get_by_label("Canary %").fill(percent)
    else:
        expect(form.get_by_label("Canary %")).to_be_disabled()
    form.get_by_label("Reason").fill(reason)
    form.get_by_role("button", name="Request change").click()
    expect(page.locator(".messages")).to_contain_text("is waiting for an approver")


def approve_latest(page: Page, expected_mode: str, take_picture: bool = False) -> None:
    page.goto("/entities/approvals/")
    row = page.get_by_test_id("approvals-table").locator("tbody tr").first
    row.get_by_test_id("approve-form").get_by_label("Comment").fill("looks right")
    if take_picture:
        screenshot(page, "approvals")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text(f"users is now on {expected_mode}")


@pytest.mark.usefixtures("queue_cluster", "entity_types", "warehouse")
def test_operator_and_approver_walk_users_from_rules_to_dbt_and_back(browser, live_server, page, operator, approver):
    operator_page = log_in(page, operator)
    approver_context = browser.new_context(base_url=live_server.url, timezone_id="Europe/Berlin", viewport=VIEWPORT)
    approver_context.set_default_timeout(15_000)
    approver_page = log_in(approver_context.new_page(), approver)
    try:
        request_mode(operator_page, "shadow", "compare both engines")
        approve_latest(approver_page, "Shadow")

        operator_page.goto("/entities/users/")
        expect(operator_page.get_by_test_id("entity-mode")).to_contain_text("Shadow")
        operator_page.get_by_role("button", name="Refresh users").click()
        expect(operator_page.locator(".messages")).to_contain_text(re.compile(r"queued as run #\d+"))
        reports = operator_page.get_by_test_id("parity-reports")
        refreshes = operator_page.get_by_test_id("refreshes")

        def refreshed_with_parity() -> bool:
            # The report is written just before the run is marked done: wait for both.
            if "100.00%" in reports.inner_text() and "Success" in refreshes.inner_text():
                return True
            operator_page.reload()
            return False

        wait_until(refreshed_with_parity, "a successful shadow refresh and its parity report", interval=1)

        request_mode(operator_page, "canary", "25% of people from dbt", "25")
        expect(operator_page.get_by_test_id("mode-requests")).to_contain_text("25% of people from dbt")
        screenshot(operator_page, "entity")
        approve_latest(approver_page, "canary 25%", take_picture=True)
        request_mode(operator_page, "dbt", "parity held under canary")
        approve_latest(approver_page, "dbt")

        operator_page.goto("/entities/users/")
        expect(operator_page.get_by_test_id("entity-mode")).to_contain_text("dbt")
        expect(operator_page.get_by_test_id("view-sql")).to_contain_text('"router"."users_dbt"()')
        history = operator_page.get_by_test_id("mode-history")
        expect(history).to_contain_text("canary 25% → dbt")
        expect(history).to_contain_text("Shadow → canary 25%")

        rollback = operator_page.get_by_test_id("rollback-form")
        rollback.get_by_label("Reason").fill("owners look wrong downstream")
        rollback.get_by_role("button", name="Roll back to rules now").click()
        expect(operator_page.locator(".messages")).to_contain_text("users is back on rules")
        expect(operator_page.get_by_test_id("entity-mode")).to_contain_text("Rules")
        expect(operator_page.get_by_test_id("mode-history")).to_contain_text("Break-glass rollback")

        approver_page.goto("/entities/")
        row = approver_page.get_by_test_id("entity-table").locator('tr[data-entity="users"]')
        expect(row.get_by_test_id("mode-badge")).to_have_text("Rules")
        expect(row).to_contain_text("100.00%")

        # Every step above is in the audit trail, the rollback newest.
        approver_page.goto("/audit/")
        audit = approver_page.get_by_test_id("audit-table").locator("tbody tr")
        expect(audit.first).to_contain_text("entity.rollback")
        expect(approver_page.get_by_test_id("audit-table")).to_contain_text("entity.mode_request.approve")
        screenshot(approver_page, "audit")
    finally:
        approver_context.close()
