"""The header's search box: `/` from any page, type, arrow down, Enter."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.search.conftest import HOSTILE, PROJECT, ingest_shop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop_snapshot(db):
    return ingest_shop()


def test_slash_then_a_column_name_then_arrow_down_and_enter_opens_the_node(login, viewer, page, shop_snapshot):
    login(viewer)
    page.goto("/runs/")
    page.evaluate("document.activeElement && document.activeElement.blur()")  # on the page, not in a field
    page.keyboard.press("/")
    box = page.get_by_role("combobox", name="Find in the portal")
    expect(box).to_be_focused()
    page.keyboard.type("email")
    results = page.get_by_test_id("site-search-results")
    expect(results.locator('[data-kind="column"]')).to_contain_text("email")
    expect(results.locator('[data-kind="column"]')).to_contain_text("model customers")
    page.keyboard.press("ArrowDown")
    expect(results.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/lineage/{PROJECT}/nodes/model\.{PROJECT}\.customers/#column-email$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("customers")


def test_slash_in_a_field_types_a_slash_and_escape_closes(login, viewer, page, shop_snapshot):
    login(viewer)
    page.goto(f"/lineage/{PROJECT}/")
    field = page.get_by_label("Search", exact=True)
    field.fill("")
    field.press("/")
    expect(field).to_have_value("/")
    box = page.get_by_role("combobox", name="Find in the portal")
    expect(box).not_to_be_focused()
    box.click()
    page.keyboard.type("orders")
    results = page.get_by_test_id("site-search-results")
    expect(results.get_by_role("option").first).to_contain_text("orders")
    page.keyboard.press("Escape")
    expect(results).to_be_hidden()
    expect(box).not_to_be_focused()
    box.press("Enter")  # nothing chosen: the form opens the full results page
    page.wait_for_url(re.compile(r"/search/\?q=orders$"))
    expect(page.get_by_test_id("search-group-node")).to_contain_text("orders_daily")


def test_a_hostile_name_is_shown_as_text_and_runs_nothing(login, viewer, page, shop_snapshot):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(viewer)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("/")
    page.keyboard.type("<script>")
    results = page.get_by_test_id("site-search-results")
    option = results.get_by_role("option").first
    expect(option).to_contain_text(HOSTILE)
    assert results.locator("script, img").count() == 0
    assert page.evaluate("window.__pwned") is None and dialogs == []
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/nodes/model\.shop\.hostile_name/$"))
    assert page.evaluate("window.__pwned") is None
