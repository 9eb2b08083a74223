"""Browse lineage in a real browser: search a model, open it, follow the picture upstream."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.lineage.conftest import (  # noqa: F401 - session fixtures
    PROJECT,
    SHOP,
    manifest_path,
    parsed_target,
    shop_manifest_path,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ingested(db, manifest_path):  # noqa: F811 - the imported fixture
    from lineage.services import ingest_manifest

    return ingest_manifest(PROJECT, manifest_path, actor="tests")


def test_search_open_and_follow_lineage_two_hops_upstream(login, viewer, page, ingested):
    login(viewer)
    page.get_by_test_id("main-nav").get_by_role("link", name="Lineage", exact=True).click()
    page.get_by_role("link", name=PROJECT).click()
    page.get_by_label("Search", exact=True).fill("fct_applications")
    page.get_by_role("button", name="Search").click()
    first_row = page.get_by_test_id("node-table").locator("tbody tr").first
    expect(first_row).to_contain_text("model")  # the model itself ranks above its tests
    first_row.get_by_role("link", name="fct_applications", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("fct_applications")

    picture = page.get_by_test_id("lineage-picture")
    # Two hops upstream by default: fct_users and stg_applications, then stg_users and the sources.
    for uid in ("model.inventory_transforms.fct_users", "model.inventory_transforms.stg_users",
                "source.inventory_transforms.raw.applications"):  # fmt: skip
        expect(picture.locator(f'a[data-unique-id="{uid}"]')).to_be_visible()
    screenshot(page, "lineage")
    picture.locator('a[data-unique-id="model.inventory_transforms.stg_users"]').click()
    page.wait_for_url(re.compile(r"/nodes/model\.inventory_transforms\.stg_users/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("stg_users")

    page.get_by_test_id("lineage-picture").locator('a[data-unique-id="source.inventory_transforms.raw.users"]').click()
    page.wait_for_url(re.compile(r"/nodes/source\.inventory_transforms\.raw\.users/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("users")
    expect(page.get_by_test_id("tests")).to_contain_text("source_unique_raw_users_id")


def test_whole_project_view_expands_a_folder(login, viewer, page, ingested):
    login(viewer)
    page.goto(f"/lineage/{PROJECT}/groups/")
    # The folder picture: staging's box opens staging's row, which loads its nodes.
    page.get_by_test_id("folder-picture").locator('a[data-unique-id="inventory_transforms/models/staging"]').click()
    folder = page.locator('details[data-folder="inventory_transforms/models/staging"]')
    expect(folder.get_by_role("link", name="stg_users")).to_be_visible()
    folder.get_by_role("link", name="stg_users").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("stg_users")


def test_filter_exposures_then_follow_one_to_its_metric_and_model(login, viewer, page, shop_manifest_path):  # noqa: F811
    from lineage.services import ingest_manifest

    ingest_manifest(SHOP, shop_manifest_path, actor="tests")
    login(viewer)
    page.goto(f"/lineage/{SHOP}/")
    page.get_by_label("Type").select_option("exposure")
    page.get_by_role("button", name="Search").click()
    page.get_by_test_id("node-table").get_by_role("link", name="revenue_dashboard").click()
    expect(page.get_by_test_id("exposure")).to_contain_text("Sales analytics")
    link = page.get_by_test_id("url").get_by_role("link")
    expect(link).to_have_attribute("href", "https://bi.example.com/dashboards/revenue")
    picture = page.get_by_test_id("lineage-picture")
    expect(picture.locator('a[data-unique-id="semantic_model.shop.orders"]')).to_be_visible()
    picture.locator('a[data-unique-id="metric.shop.revenue"]').click()
    page.wait_for_url(re.compile(r"/nodes/metric\.shop\.revenue/$"))
    expect(page.get_by_test_id("measure")).to_contain_text("order_total")
    page.get_by_role("link", name="semantic_model.shop.orders", exact=True).click()
    expect(page.get_by_test_id("measures")).to_contain_text("order_total")
    page.get_by_test_id("sm-model").get_by_role("link", name="model.shop.orders", exact=True).click()
    expect(page.get_by_test_id("access")).to_have_text("public")
    expect(page.get_by_test_id("contract-columns")).to_contain_text("primary_key")
    screenshot(page, "lineage-model-contract")
