"""dbt's other objects as first-class pages, from a real `dbt parse` of the shop project
(tests/lineage/fixtures/shop): exposures, metrics, semantic models, saved queries, groups,
and models' contracts, access and versions."""

from __future__ import annotations

import html
import json

import pytest

from lineage.models import Edge, Node
from lineage.selectors import select_in_snapshot
from lineage.services import ingest_manifest
from tests.conftest import PASSWORD
from tests.lineage.conftest import SHOP

EXPOSURE = "exposure.shop.revenue_dashboard"
REVENUE = "metric.shop.revenue"
DERIVED = "metric.shop.revenue_per_order"
SEMANTIC = "semantic_model.shop.orders"
SAVED = "saved_query.shop.daily_revenue"
GROUP = "group.shop.sales"
ORDERS = "model.shop.orders"
STG_ORDERS = "model.shop.stg_orders"
CUSTOMERS_V1, CUSTOMERS_V2 = "model.shop.customers.v1", "model.shop.customers.v2"


@pytest.fixture
def as_viewer(client, viewer):
    client.login(username=viewer.username, password=PASSWORD)
    return client


def page_of(client, unique_id: str) -> str:
    response = client.get(f"/lineage/{SHOP}/nodes/{unique_id}/")
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, testid: str) -> str:
    """The element marked data-testid=testid, up to its first closing tag of a block."""
    start = page.index(f'data-testid="{testid}"')
    ends = [i for i in (page.find(tag, start) for tag in ("</dd>", "</table>", "</ul>", "</pre>")) if i != -1]
    return page[start : min(ends)]


def test_ingest_keeps_every_kind_and_dbt_s_edges_between_them(shop_snapshot, shop_manifest_json):
    counts = shop_snapshot.counts_by_type
    assert (counts["exposure"], counts["metric"], counts["semantic_model"], counts["saved_query"]) == (1, 3, 1, 1)
    assert counts["group"] == 1 and counts["model"] == 5
    assert shop_snapshot.node_count == sum(counts.values())
    edges = set(Edge.objects.filter(snapshot=shop_snapshot).values_list("parent", "child"))
    expected = {(p, c) for c, parents in shop_manifest_json["parent_map"].items() for p in parents}
    assert edges == expected
    assert {(ORDERS, EXPOSURE), (REVENUE, EXPOSURE), (SEMANTIC, REVENUE), (REVENUE, SAVED), (ORDERS, SEMANTIC)} <= edges
    group = Node.objects.get(snapshot=shop_snapshot, unique_id=GROUP)
    assert group.details == {"owner": {"name": "Sales analytics", "email": "sales-analytics@example.com"}}


def test_exposure_page_shows_type_owner_maturity_link_and_what_it_depends_on(as_viewer, shop_snapshot):
    page = page_of(as_viewer, EXPOSURE)
    assert "Revenue dashboard" in section(page, "label")
    assert "dashboard" in section(page, "exposure-type")
    assert "Sales analytics · sales-analytics@example.com" in section(page, "owner")
    assert "high" in section(page, "maturity")
    assert '<a href="https://bi.example.com/dashboards/revenue" rel="noopener noreferrer nofollow"' in page
    assert "Revenue by day, for the sales team." in section(page, "description")
    assert f'href="/lineage/{SHOP}/nodes/{ORDERS}/"' in page and f'href="/lineage/{SHOP}/nodes/{REVENUE}/"' in page
    assert 'data-testid="columns"' not in page  # no columns or tests: not a table


def test_metric_pages_show_type_label_measure_filter_and_inputs(as_viewer, shop_snapshot):
    page = page_of(as_viewer, REVENUE)
    assert "Revenue" in section(page, "label") and "simple" in section(page, "metric-type")
    assert "order_total" in section(page, "measure")
    assert html.escape("{{ Dimension('order__status') }} = 'paid'") in section(page, "filter")
    assert f'href="/lineage/{SHOP}/nodes/{SEMANTIC}/"' in page  # depends on its semantic model
    assert f'href="/lineage/{SHOP}/nodes/{GROUP}/">sales</a>' in section(page, "member-of")
    derived = page_of(as_viewer, DERIVED)
    assert "derived" in section(derived, "metric-type")
    assert "revenue / orders_placed" in derived
    assert "revenue, orders_placed" in section(derived, "input-metrics")
    assert "—" in section(derived, "filter")


def test_semantic_model_page_shows_its_model_entities_dimensions_and_measures(as_viewer, shop_snapshot):
    page = page_of(as_viewer, SEMANTIC)
    model = section(page, "sm-model")
    assert "ref(&#x27;orders&#x27;)" in model and f'href="/lineage/{SHOP}/nodes/{ORDERS}/"' in model
    entities = section(page, "entities")
    assert "<code>order</code></td><td>primary</td><td><code>order_id</code>" in entities
    assert "<code>customer</code></td><td>foreign</td><td><code>customer_id</code>" in entities
    dimensions = section(page, "dimensions")
    assert "<code>ordered_at</code></td><td>time</td><td>day</td>" in dimensions
    assert "<code>status</code></td><td>categorical</td>" in dimensions
    measures = section(page, "measures")
    assert "<code>order_total</code></td><td>sum</td><td><code>amount</code>" in measures
    assert "Sum of order amounts." in measures and "<code>order_count</code></td><td>count</td>" in measures


def test_saved_query_page_shows_its_query_params_and_exports(as_viewer, shop_snapshot):
    page = page_of(as_viewer, SAVED)
    assert "Daily revenue" in section(page, "label")
    assert "revenue, orders_placed" in section(page, "query-metrics")
    assert html.escape("TimeDimension('order__ordered_at', 'day')") in section(page, "query-group-by")
    assert html.escape("{{ Dimension('order__status') }} = 'paid'") in section(page, "query-where")
    exports = section(page, "exports")
    assert "<code>daily_revenue_export</code></td><td>table</td><td>exports</td>" in exports
    assert f'href="/lineage/{SHOP}/nodes/{REVENUE}/"' in page


def test_group_page_shows_its_owner_and_members(as_viewer, shop_snapshot):
    page = page_of(as_viewer, GROUP)
    assert "Sales analytics · sales-analytics@example.com" in section(page, "owner")
    members = section(page, "members")
    for uid in (ORDERS, STG_ORDERS, REVENUE, SEMANTIC):
        assert f'href="/lineage/{SHOP}/nodes/{uid}/"' in members
    assert "private" in members and "public" in members
    assert "customers" not in members  # in no group


def test_model_page_shows_contract_access_group_and_versions(as_viewer, shop_snapshot):
    page = page_of(as_viewer, ORDERS)
    assert "public" in section(page, "access")
    assert f'href="/lineage/{SHOP}/nodes/{GROUP}/">sales</a>' in section(page, "model-group")
    assert "enforced" in section(page, "contract")
    columns = section(page, "contract-columns")
    assert "<code>order_id</code></td><td>integer</td><td><code>not_null</code>, <code>primary_key</code>" in columns
    assert "<code>amount</code></td><td>numeric</td><td>—" in columns
    assert "check: amount &gt;= 0" in section(page, "model-constraints")
    assert 'data-testid="version"' not in page  # not versioned
    assert "private" in section(page_of(as_viewer, STG_ORDERS), "access")
    v2 = page_of(as_viewer, CUSTOMERS_V2)
    assert "v2 (latest)" in section(v2, "version")
    assert f'href="/lineage/{SHOP}/nodes/{CUSTOMERS_V1}/">v1</a>' in section(v2, "other-versions")
    assert "not enforced" in section(v2, "contract")
    v1 = page_of(as_viewer, CUSTOMERS_V1)
    assert "v1 · latest is v2" in section(v1, "version")
    assert f'href="/lineage/{SHOP}/nodes/{CUSTOMERS_V2}/">v2</a>' in section(v1, "other-versions")
    plain = page_of(as_viewer, "model.shop.metricflow_time_spine")  # dbt's defaults: one line, no section
    assert "Access, group and versions" not in plain
    assert "Access <span" in plain and "protected</span> (dbt's default) · no group" in plain


def test_lineage_picture_draws_semantic_objects_and_exposures(as_viewer, shop_snapshot):
    response = as_viewer.get(f"/lineage/{SHOP}/nodes/{ORDERS}/", {"down": 3})
    kinds = {n["unique_id"]: n["resource_type"] for n in response.context["graph"]["nodes"]}
    assert kinds[SEMANTIC] == "semantic_model" and kinds[REVENUE] == "metric"
    assert kinds[EXPOSURE] == "exposure" and kinds[SAVED] == "saved_query" and kinds[DERIVED] == "metric"


def test_project_page_lists_and_filters_each_kind(as_viewer, shop_snapshot):
    page = as_viewer.get(f"/lineage/{SHOP}/").content.decode()
    for kind in ("exposure", "metric", "semantic_model", "saved_query", "group"):
        assert f'<option value="{kind}">{kind}</option>' in page
    for kind, names in {
        "exposure": ["revenue_dashboard"],
        "metric": ["orders_placed", "revenue", "revenue_per_order"],
        "group": ["sales"],
        "saved_query": ["daily_revenue"],
    }.items():
        response = as_viewer.get(f"/lineage/{SHOP}/", {"resource_type": kind})
        assert [n.name for n in response.context["page"]] == names
    exposures = as_viewer.get(f"/lineage/{SHOP}/", {"resource_type": "exposure"}).content.decode()
    assert "<td>dashboard</td>" in exposures
    by_label = as_viewer.get(f"/lineage/{SHOP}/", {"q": "revenue per order"})
    assert [n.unique_id for n in by_label.context["page"]] == [DERIVED]


def test_node_detail_api_includes_each_kind_s_fields(api_client, viewer, shop_snapshot):
    api_client.force_authenticate(viewer)
    api = f"/api/v1/projects/{SHOP}/nodes"
    exposure = api_client.get(f"{api}/{EXPOSURE}/").json()
    assert exposure["details"] == {
        "type": "dashboard",
        "maturity": "high",
        "url": "https://bi.example.com/dashboards/revenue",
        "label": "Revenue dashboard",
        "owner": {"name": "Sales analytics", "email": "sales-analytics@example.com"},
    }
    assert sorted(exposure["depends_on"]) == [REVENUE, ORDERS]
    metric = api_client.get(f"{api}/{REVENUE}/").json()
    assert metric["details"]["type_params"]["measure"]["name"] == "order_total"
    assert metric["group"] == "sales"
    semantic = api_client.get(f"{api}/{SEMANTIC}/").json()
    assert [m["name"] for m in semantic["details"]["measures"]] == ["order_total", "order_count"]
    saved = api_client.get(f"{api}/{SAVED}/").json()
    assert saved["details"]["query_params"]["metrics"] == ["revenue", "orders_placed"]
    assert [e["name"] for e in saved["details"]["exports"]] == ["daily_revenue_export"]
    group = api_client.get(f"{api}/{GROUP}/").json()
    assert sorted(group["members"]) == sorted([ORDERS, STG_ORDERS, REVENUE, SEMANTIC])
    orders = api_client.get(f"{api}/{ORDERS}/").json()
    assert orders["details"]["access"] == "public" and orders["details"]["contract"]["enforced"] is True
    order_id = orders["details"]["contract_columns"][0]
    assert (order_id["name"], order_id["data_type"]) == ("order_id", "integer")
    assert [c["type"] for c in order_id["constraints"]] == ["not_null", "primary_key"]
    v2 = api_client.get(f"{api}/{CUSTOMERS_V2}/").json()
    assert (v2["version"], v2["details"]["latest_version"], v2["other_versions"]) == ("2", "2", [CUSTOMERS_V1])


def test_selection_never_picks_a_group(shop_snapshot):
    everything = select_in_snapshot(shop_snapshot.pk, "*")
    assert GROUP not in everything and {EXPOSURE, REVENUE, SEMANTIC, SAVED, ORDERS} <= set(everything)
    assert select_in_snapshot(shop_snapshot.pk, "+exposure:revenue_dashboard") == sorted(
        [EXPOSURE, ORDERS, REVENUE, SEMANTIC, STG_ORDERS]
    )


HOSTILE = "<script>alert('{}')</script>"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert('url')",
        " JaVaScRiPt:alert('url')",
        "java\tscript:alert('url')",
        "data:text/html,<script>alert('url')</script>",
        "//evil.example.com/x",
    ],
)
def test_hostile_strings_are_escaped_and_only_http_urls_are_links(as_viewer, db, shop_manifest_json, tmp_path, url):
    manifest = json.loads(json.dumps(shop_manifest_json))
    exposure = manifest["exposures"][EXPOSURE]
    exposure.update(
        label=HOSTILE.format("label"),
        url=url,
        type=HOSTILE.format("type"),
        maturity=HOSTILE.format("maturity"),
        owner={"name": HOSTILE.format("owner"), "email": HOSTILE.format("email")},
    )
    exposure["description"] = HOSTILE.format("desc") + ' [x](javascript:alert(2)) <a href="javascript:alert(3)">a</a>'
    metric = manifest["metrics"][REVENUE]
    metric["label"] = HOSTILE.format("metric")
    metric["type_params"]["measure"]["name"] = HOSTILE.format("measure")
    metric["filter"]["where_filters"][0]["where_sql_template"] = HOSTILE.format("filter")
    semantic = manifest["semantic_models"][SEMANTIC]
    semantic["entities"][0]["name"] = HOSTILE.format("entity")
    semantic["measures"][0]["description"] = HOSTILE.format("measure_desc")
    semantic["model"] = HOSTILE.format("model")
    saved = manifest["saved_queries"][SAVED]
    saved["query_params"]["group_by"] = [HOSTILE.format("group_by")]
    saved["exports"][0]["name"] = HOSTILE.format("export")
    manifest["groups"][GROUP]["owner"]["name"] = HOSTILE.format("group_owner")
    orders = manifest["nodes"][ORDERS]
    orders["columns"]["amount"]["data_type"] = HOSTILE.format("data_type")
    orders["constraints"][0]["expression"] = HOSTILE.format("check")
    orders["access"] = HOSTILE.format("access")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    ingest_manifest(SHOP, path)
    for uid, shown in [
        (EXPOSURE, ["label", "type", "maturity", "owner", "email"]),  # the description's script: removed
        (REVENUE, ["metric", "measure", "filter"]),
        (SEMANTIC, ["entity", "measure_desc", "model"]),
        (SAVED, ["group_by", "export"]),
        (GROUP, ["group_owner"]),
        (ORDERS, ["data_type", "check", "access"]),
    ]:
        page = page_of(as_viewer, uid)
        assert "<script>alert" not in page and "alert(2)" not in page and "alert(3)" not in page
        assert 'href="javascript' not in page.lower() and 'href="data:' not in page
        for word in shown:
            assert f"&lt;script&gt;alert(&#x27;{word}&#x27;)&lt;/script&gt;" in page, (uid, word)
    page = page_of(as_viewer, EXPOSURE)
    assert "not an http or https address: not linked" in section(page, "url")
    assert "<a " not in section(page, "url")
    listing = as_viewer.get(f"/lineage/{SHOP}/", {"resource_type": "exposure"}).content.decode()
    assert "<script>alert" not in listing and "&lt;script&gt;alert(&#x27;type&#x27;)&lt;/script&gt;" in listing


def test_odd_shapes_of_these_fields_are_left_out_not_refused(as_viewer, db, shop_manifest_json, tmp_path):
    """Fields shown, never relied on: a wrong shape loses the field, not the whole manifest."""
    manifest = json.loads(json.dumps(shop_manifest_json))
    manifest["exposures"][EXPOSURE].update(url={"href": "https://x"}, owner="someone", maturity=["high"])
    manifest["metrics"][REVENUE].update(type_params="measure", filter=7, label=None)
    manifest["nodes"][ORDERS].update(constraints="not a list", access=True)
    manifest["nodes"][ORDERS]["columns"]["amount"]["constraints"] = {"type": "check"}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    snapshot = ingest_manifest(SHOP, path)
    exposure = Node.objects.get(snapshot=snapshot, unique_id=EXPOSURE)
    assert exposure.details == {"type": "dashboard", "label": "Revenue dashboard"}
    assert "—" in section(page_of(as_viewer, EXPOSURE), "url")
    assert Node.objects.get(snapshot=snapshot, unique_id=REVENUE).details == {"type": "simple", "group": "sales"}
    orders = page_of(as_viewer, ORDERS)
    assert "protected" in section(orders, "access") and "enforced" in section(orders, "contract")
    assert 'data-testid="model-constraints"' not in orders
