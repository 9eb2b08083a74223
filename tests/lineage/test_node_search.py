"""A project's node search (its page's box and GET …/nodes/?search=): a substring of name,
label, path, tags or description; exact name first, then name prefix, then the rest, tests
after the rest, then by name; filtered by type and tag; paged."""

from __future__ import annotations

import pytest

from tests.search.conftest import PROJECT, _node, ingest_shop

API = f"/api/v1/projects/{PROJECT}/nodes/"


@pytest.fixture
def as_viewer(api_client, viewer):
    api_client.force_authenticate(viewer)
    return api_client


def names(client, **params) -> list[str]:
    answer = client.get(API, params)
    assert answer.status_code == 200, answer.content
    return [node["name"] for node in answer.json()["results"]]


def test_search_ranks_exact_then_prefix_then_the_rest_with_tests_last(db, as_viewer):
    ingest_shop()
    # customers is tagged "orders", refunds says "orders" in its description; payments has a
    # column "orders", which the node list does not search (the site search does)
    assert names(as_viewer, search="orders") == [
        "orders", "orders_daily", "customers", "refunds", "stg_orders", "not_null_orders_order_id",
    ]  # fmt: skip
    assert names(as_viewer, search=" ORDERS_D ") == ["orders_daily"]
    assert names(as_viewer, search="models/stg_") == ["stg_orders"]
    assert names(as_viewer, search="zzz") == []


def test_search_with_type_and_tag_filters(db, as_viewer):
    ingest_shop()
    assert names(as_viewer, search="orders", resource_type="test") == ["not_null_orders_order_id"]
    assert names(as_viewer, search="orders", tag="finance") == ["orders"]
    assert names(as_viewer, search="orders", tag="pii", resource_type="model") == ["customers"]


def test_a_search_is_paged_and_the_page_shows_it(db, as_viewer, client, viewer):
    ingest_shop([_node(f"mart_{i:02}", description="A mart.") for i in range(60)] + [_node("unrelated")])
    first = as_viewer.get(API, {"search": "mart"}).json()
    second = as_viewer.get(API, {"search": "mart", "page": 2}).json()
    assert first["count"] == 60
    assert [n["name"] for n in first["results"] + second["results"]] == [f"mart_{i:02}" for i in range(60)]
    client.force_login(viewer)
    page = client.get(f"/lineage/{PROJECT}/", {"q": "mart", "page": 2}).content.decode()
    assert "mart_59" in page and "mart_49" not in page and "unrelated" not in page
