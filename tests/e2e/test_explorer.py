"""The whole-project explorer in a real browser: every node drawn, a selector highlights what
the select API returns, the URL keeps the view, clicks open node pages, folders collapse."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.lineage.conftest import PROJECT, manifest_json, manifest_path, parsed_target  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EXPLORE = f"/lineage/{PROJECT}/explore/"
STG_USERS = "model.inventory_transforms.stg_users"
FCT_USERS = "model.inventory_transforms.fct_users"
HOSTILE = '<img src=x onerror="document.title=1"><script>document.title=2</script>'


@pytest.fixture
def ingested(db, manifest_path):  # noqa: F811 - the imported fixture
    from lineage.services import ingest_manifest

    return ingest_manifest(PROJECT, manifest_path, actor="tests")


def selected_by_the_api(page, selector: str) -> set[str]:
    response = page.request.get(f"/api/v1/projects/{PROJECT}/select/?select={quote(selector)}")
    assert response.ok, response.text()
    return set(response.json()["nodes"])


def listed(page) -> set[str]:
    links = page.get_by_test_id("explorer-selection").locator("a[data-unique-id]")
    return {links.nth(i).get_attribute("data-unique-id") for i in range(links.count())}


def click_node(page, unique_id: str) -> None:
    """Click where sigma drew the node, in the canvas's own pixels."""
    canvas = page.get_by_test_id("explorer-canvas")
    point = canvas.evaluate("(el, id) => el.explorer.viewportPosition(id)", unique_id)
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + point["x"], box["y"] + point["y"])


def test_explorer_draws_every_node_and_highlights_the_selection(login, viewer, page, ingested):
    login(viewer)
    page.goto(f"/lineage/{PROJECT}/")
    page.get_by_test_id("explorer-link").click()
    canvas = page.get_by_test_id("explorer-canvas")
    expect(canvas).to_have_attribute("data-ready", "1")
    expect(canvas).to_have_attribute("data-drawn", str(ingested.node_count))
    expect(canvas).to_have_attribute("data-node-count", str(ingested.node_count))
    assert canvas.locator("canvas").count() >= 1  # sigma's WebGL layers

    page.get_by_test_id("explorer-select").fill("+fct_users")
    page.get_by_test_id("explorer-select").press("Enter")
    expected = selected_by_the_api(page, "+fct_users")
    assert STG_USERS in expected and FCT_USERS in expected
    expect(canvas).to_have_attribute("data-selected", "+fct_users")
    expect(canvas).to_have_attribute("data-highlighted", str(len(expected)))
    assert listed(page) == expected
    expect(page).to_have_url(re.compile(r"\?select=%2Bfct_users$"))

    # The URL is the view: opened again (shared), it shows the same selection.
    page.reload()
    expect(canvas).to_have_attribute("data-ready", "1")
    expect(page.get_by_test_id("explorer-select")).to_have_value("+fct_users")
    expect(canvas).to_have_attribute("data-highlighted", str(len(expected)))
    # Fit to selection zooms onto a small one.
    page.get_by_test_id("explorer-select").fill("fct_users")
    page.get_by_test_id("explorer-select").press("Enter")
    expect(canvas).to_have_attribute("data-selected", "fct_users")
    page.get_by_role("button", name="Fit to selection").click()
    page.wait_for_function("() => document.querySelector('.explorer-canvas').explorer.cameraRatio() < 1")

    # A refused selector says why, as the API does.
    page.get_by_test_id("explorer-select").fill("state:modified")
    page.get_by_test_id("explorer-select").press("Enter")
    expect(page.get_by_test_id("explorer-error")).to_contain_text("state")
    expect(canvas).to_have_attribute("data-selection", "none")

    # A click on a drawn node opens its page; so does its entry in the selection list.
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => document.querySelector('.explorer-canvas').explorer.cameraRatio() === 1")
    click_node(page, STG_USERS)
    page.wait_for_url(re.compile(r"/nodes/model\.inventory_transforms\.stg_users/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("stg_users")
    page.goto(f"{EXPLORE}?select=fct_users")
    page.get_by_test_id("explorer-selection").get_by_role("link", name="fct_users", exact=True).click()
    page.wait_for_url(re.compile(r"/nodes/model\.inventory_transforms\.fct_users/$"))


def test_filters_and_folder_clusters_live_in_the_url(login, viewer, page, ingested):
    login(viewer)
    page.goto(f"{EXPLORE}?clusters=on")
    canvas = page.get_by_test_id("explorer-canvas")
    expect(canvas).to_have_attribute("data-ready", "1")
    folders = json.loads(page.request.get(f"{EXPLORE}graph.json").text())["folders"]
    expect(canvas).to_have_attribute("data-drawn", str(len(folders)))
    staging = next(f for f in folders if f["folder"] == "inventory_transforms/models/staging")
    page.get_by_test_id("explorer-clusters").get_by_role(
        "button", name=re.compile(r"^Open inventory_transforms.models.staging \(")
    ).click()
    expect(canvas).to_have_attribute("data-drawn", str(len(folders) - 1 + staging["count"]))
    expect(page).to_have_url(re.compile(r"open=inventory_transforms%2Fmodels%2Fstaging"))
    # A click on a cluster opens it too: the seeds' folder.
    seeds = next(f for f in folders if f["folder"].endswith("/seeds"))
    click_node(page, f"folder:{seeds['folder']}")
    expect(canvas).to_have_attribute("data-drawn", str(len(folders) - 2 + staging["count"] + seeds["count"]))

    # A selection lights the clusters holding its nodes and counts every one of them.
    page.goto(f"{EXPLORE}?clusters=on&select=%2Bfct_users")
    expect(canvas).to_have_attribute("data-ready", "1")
    expect(canvas).to_have_attribute("data-highlighted", str(len(selected_by_the_api(page, "+fct_users"))))

    page.goto(EXPLORE)
    expect(canvas).to_have_attribute("data-ready", "1")
    page.get_by_role("checkbox", name="test", exact=True).uncheck()
    tests = ingested.counts_by_type.get("test", 0)
    assert tests > 0
    expect(canvas).to_have_attribute("data-node-count", str(ingested.node_count - tests))
    expect(page).to_have_url(re.compile(r"hide=test"))
    page.reload()
    expect(canvas).to_have_attribute("data-node-count", str(ingested.node_count - tests))
    expect(page.get_by_role("checkbox", name="test", exact=True)).not_to_be_checked()


def test_a_hostile_name_is_drawn_as_text(login, viewer, page, db, manifest_json, tmp_path):  # noqa: F811
    from lineage.services import ingest_manifest

    manifest = json.loads(json.dumps(manifest_json))
    seed = next(n for n in manifest["nodes"].values() if n["resource_type"] == "seed")
    hostile = {**seed, "name": HOSTILE, "unique_id": "seed.inventory_transforms.hostile"}
    manifest["nodes"][hostile["unique_id"]] = hostile
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    ingest_manifest(PROJECT, path, actor="tests")
    login(viewer)
    page.goto(f"{EXPLORE}?select=resource_type%3Aseed")
    expect(page.get_by_test_id("explorer-canvas")).to_have_attribute("data-ready", "1")
    entry = page.get_by_test_id("explorer-selection").locator('a[data-unique-id="seed.inventory_transforms.hostile"]')
    expect(entry).to_have_text(HOSTILE)
    assert page.get_by_test_id("explorer-selection").locator("img, script").count() == 0
    assert page.title().endswith("Transformation Portal")  # nothing ran
