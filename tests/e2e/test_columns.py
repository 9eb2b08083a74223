"""Column lineage in a real browser: a node page's columns link upstream and downstream, the
search box finds a column and opens its row, the explorer's column mode draws a column's graph,
and hostile names in all of them stay text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.lineage.conftest import (  # noqa: F401 - session fixtures
    HOSTILE,
    HOSTILE_MODEL,
    JAFFLE,
    PROJECT,
    demo_target,
    hostile_jaffle,
    jaffle_target,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

APPS = f"model.{PROJECT}.fct_applications"


def _ingest(project, target, manifest=None):
    from lineage import columns
    from lineage.services import ingest_manifest

    snapshot = ingest_manifest(project, manifest or target / "manifest.json", catalog_path=target / "catalog.json")
    columns.compute(snapshot.pk)
    return snapshot


@pytest.fixture
def demo(db, demo_target):  # noqa: F811 - the imported fixture
    return _ingest(PROJECT, demo_target)


def test_a_columns_upstream_link_opens_that_column_on_its_node_page(login, viewer, page, demo):
    login(viewer)
    page.goto(f"/lineage/{PROJECT}/nodes/{APPS}/")
    row = page.get_by_test_id("columns").locator('tr[data-column="owner_status"]')
    upstream = row.get_by_test_id("column-upstream")
    expect(upstream.get_by_role("link")).to_have_text(["fct_users.is_active", "fct_users.user_id"])
    page.locator("#columns").evaluate("section => section.scrollIntoView()")
    screenshot(page, "column-lineage")
    upstream.get_by_role("link", name="fct_users.is_active").click()
    page.wait_for_url(re.compile(rf"/nodes/model\.{PROJECT}\.fct_users/#column-is_active$"))
    target = page.locator("tr:target")
    expect(target).to_have_attribute("data-column", "is_active")
    expect(target.get_by_test_id("column-upstream")).to_have_text("stg_users.is_active")
    expect(target.get_by_test_id("column-downstream")).to_have_text("fct_applications.owner_status")


def test_the_search_box_finds_a_column_by_name_and_opens_its_row(login, viewer, page, demo):
    login(viewer)
    page.goto("/runs/")
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("/")
    page.keyboard.type("owner_status")
    results = page.get_by_test_id("site-search-results")
    column = results.locator('[data-kind="column"]').first
    expect(column).to_contain_text("owner_status")
    column.click()
    page.wait_for_url(re.compile(rf"/nodes/model\.{PROJECT}\.fct_applications/#column-owner_status$"))
    expect(page.locator("tr:target")).to_have_attribute("data-column", "owner_status")


def test_the_explorer_column_mode_draws_a_columns_graph(login, viewer, page, db, jaffle_target):  # noqa: F811
    _ingest(JAFFLE, jaffle_target)
    login(viewer)
    page.goto(f"/lineage/{JAFFLE}/explore/")
    mode = page.get_by_test_id("explorer-columns")
    mode.get_by_test_id("explorer-columns-node").fill("stg_payments")
    mode.get_by_role("button", name="Its columns").click()
    mode.get_by_test_id("explorer-columns-column").select_option("payment_method")
    picture = mode.get_by_test_id("explorer-columns-picture")
    for node, label in [
        (f"seed.{JAFFLE}.raw_payments|payment_method", "raw_payments.payment_meth…"),  # cut at 26 characters
        (f"model.{JAFFLE}.stg_payments|payment_method", "stg_payments.payment_meth…"),
        (f"model.{JAFFLE}.orders|credit_card_amount", "orders.credit_card_amount"),
    ]:
        expect(picture.locator(f'a[data-unique-id="{node}"] text')).to_have_text(label)
    expect(picture.locator("a.node-link")).to_have_count(5)
    page.wait_for_url(re.compile(r"[?&]column=model\.jaffle\.stg_payments%3Apayment_method"))
    page.reload()  # the URL keeps the column
    expect(mode.get_by_test_id("explorer-columns-column")).to_have_value("payment_method")
    picture.locator(f'a[data-unique-id="model.{JAFFLE}.orders|credit_card_amount"]').click()
    page.wait_for_url(re.compile(rf"/nodes/model\.{JAFFLE}\.orders/#column-credit_card_amount$"))


def test_hostile_names_fire_nothing_in_the_column_views(login, viewer, page, db, jaffle_target, tmp_path):  # noqa: F811
    _ingest(JAFFLE, jaffle_target, hostile_jaffle(jaffle_target, tmp_path))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(viewer)
    page.goto(f"/lineage/{JAFFLE}/nodes/model.{JAFFLE}.stg_payments/")
    downstream = page.get_by_test_id("columns").locator('tr[data-column="amount"]').get_by_test_id("column-downstream")
    expect(downstream).to_contain_text(f"{HOSTILE}.{HOSTILE}")
    page.goto(f"/lineage/{JAFFLE}/nodes/{HOSTILE_MODEL}/")
    expect(page.get_by_test_id("columns").locator("tbody tr").first).to_contain_text(HOSTILE)
    assert page.locator("[data-testid=columns] script, [data-testid=columns] img").count() == 0
    page.goto(f"/lineage/{JAFFLE}/explore/?column=model.{JAFFLE}.stg_payments:amount")
    picture = page.get_by_test_id("explorer-columns-picture")
    expect(picture.locator("a.node-link")).to_have_count(9)  # raw_payments, itself, 6 in jaffle, the hostile one
    assert picture.locator("script, img").count() == 0
    assert page.evaluate("window.__pwned") is None and dialogs == []
