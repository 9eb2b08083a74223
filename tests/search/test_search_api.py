"""GET /api/v1/search/?q=: every kind the search box finds, ranked, bounded, and only what
the caller may read."""

from __future__ import annotations

import pytest

from tests.search.conftest import HOSTILE, PROJECT, _node, ingest_shop

pytestmark = pytest.mark.django_db


def _search(client, user, **params) -> list[dict]:
    client.force_authenticate(user)
    response = client.get("/api/v1/search/", params)
    assert response.status_code == 200, response.content
    assert response.json()["query"] == params["q"].strip()
    return response.json()["results"]


def test_ranked_exact_prefix_substring_tag_column_description(api_client, viewer, shop):
    results = _search(api_client, viewer, q="orders", per_kind=10, limit=50)
    assert [(r["kind"], r["name"], r["match"]) for r in results] == [
        ("node", "orders", "exact"),
        ("node", "orders_daily", "prefix"),
        ("job", "orders nightly", "prefix"),
        ("environment", "orders_env", "prefix"),
        ("node", "stg_orders", "substring"),
        ("node", "not_null_orders_order_id", "substring"),  # a test after the model
        ("node", "customers", "tag"),
        ("tag", "orders", "tag"),
        ("column", "orders", "column"),
        ("node", "payments", "description"),  # its column `orders`, "The orders."
        ("node", "refunds", "description"),
    ]


def test_each_kind_has_a_name_a_url_and_its_project(api_client, viewer, shop):
    job, env, run = shop["job"], shop["environment"], shop["run"]
    cases = {
        "node": ("stg_orders", "stg_orders", f"/lineage/{PROJECT}/nodes/model.{PROJECT}.stg_orders/", "model"),
        "column": ("customer_id", "customer_id",
                   f"/lineage/{PROJECT}/nodes/model.{PROJECT}.customers/#column-customer_id", "model customers"),
        "tag": ("pii", "pii", f"/lineage/{PROJECT}/?tag=pii", "tag"),
        "job": ("orders nightly", "orders nightly", f"/jobs/{job.pk}/", "job on orders_env"),
        "run": (f"#{run.pk}", f"run #{run.pk}", f"/runs/{run.pk}/", "queued · job orders nightly"),
        "environment": ("orders_env", "orders_env", f"/jobs/environments/#environment-{env.pk}",
                        "environment, target prod"),
    }  # fmt: skip
    for kind, (q, name, url, detail) in cases.items():
        results = _search(api_client, viewer, q=q, kind=kind)
        assert results, kind
        first = results[0]
        assert (first["kind"], first["name"], first["url"], first["project"], first["detail"]) == (
            kind, name, url, PROJECT, detail,
        ), kind  # fmt: skip


def test_a_column_is_found_by_name_and_prefix_with_its_description(api_client, viewer, shop):
    results = _search(api_client, viewer, q="customer_", kind="column")
    assert [(r["name"], r["detail"]) for r in results] == [
        ("customer_id", "model customers"),
        ("customer_id", "model orders"),
    ]
    assert results[0]["snippet"] == "The customer id." and results[0]["match"] == "column"


def test_descriptions_match_by_words(api_client, viewer, shop):
    results = _search(api_client, viewer, q="returned ord", kind="node")
    assert [(r["name"], r["match"]) for r in results] == [("refunds", "description")]
    assert results[0]["snippet"].startswith("Refunds of returned orders")
    # A column's description counts as its node's.
    assert [r["name"] for r in _search(api_client, viewer, q="payment id", kind="node")] == ["payments"]


def test_runs_by_number(api_client, viewer, shop):
    run = shop["run"]
    for q in (str(run.pk), f"#{run.pk}", f"run {run.pk}", f"Run #{run.pk}"):
        assert [r["name"] for r in _search(api_client, viewer, q=q, kind="run")] == [f"run #{run.pk}"]
    assert _search(api_client, viewer, q=f"#{run.pk + 1000}", kind="run") == []


def test_bounded_per_kind_and_in_all(api_client, viewer, shop):
    results = _search(api_client, viewer, q="orders", per_kind=2)
    assert [r["name"] for r in results if r["kind"] == "node"] == ["orders", "orders_daily"]
    assert len(_search(api_client, viewer, q="orders", limit=3)) == 3


def test_only_the_current_snapshot_is_searched(api_client, viewer, shop):
    ingest_shop([_node("orders_v2", columns=["order_key"])], invocation="2")
    assert [r["name"] for r in _search(api_client, viewer, q="orders", kind="node")] == ["orders_v2"]
    assert _search(api_client, viewer, q="customer_id", kind="column") == []
    assert [r["name"] for r in _search(api_client, viewer, q="order_k", kind="column")] == ["order_key"]


def test_wildcards_are_plain_characters(api_client, viewer, shop):
    assert _search(api_client, viewer, q="%", kind="node") == []
    assert _search(api_client, viewer, q="orders%daily", kind="node") == []
    assert [r["name"] for r in _search(api_client, viewer, q="s_d", kind="node")] == ["orders_daily"]


def test_a_hostile_name_comes_back_as_plain_text(api_client, viewer, shop):
    results = _search(api_client, viewer, q="<script>", kind="node")
    assert [r["name"] for r in results] == [HOSTILE]
    assert results[0]["snippet"] == HOSTILE[:160]


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "admin_user"])
def test_every_reading_role_sees_jobs_and_runs(request, api_client, shop, role):
    user = request.getfixturevalue(role)
    kinds = {r["kind"] for r in _search(api_client, user, q="orders nightly")}
    assert "job" in kinds
    assert [r["kind"] for r in _search(api_client, user, q=f"#{shop['run'].pk}")] == ["run"]


def test_environments_link_to_their_edit_page_for_who_may_edit(api_client, operator, shop):
    env = shop["environment"]
    results = _search(api_client, operator, q="orders_env", kind="environment")
    assert results[0]["url"] == f"/jobs/environments/{env.pk}/"


def test_no_role_is_403_and_no_login_401(api_client, nobody, shop):
    api_client.force_authenticate(nobody)
    response = api_client.get("/api/v1/search/", {"q": "orders"})
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/search/", {"q": "orders"}).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x" * 201}, "q"),
        ({"q": "orders", "kind": "nodes"}, "kind"),
        ({"q": "orders", "per_kind": "0"}, "per_kind"),
        ({"q": "orders", "limit": "301"}, "limit"),
        ({"q": "orders", "limit": "ten"}, "limit"),
        ({"q": "orders", "limit": "²"}, "limit"),
        ({"q": "orders\x00"}, "q"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(api_client, viewer, params, field):
    api_client.force_authenticate(viewer)
    response = api_client.get("/api/v1/search/", params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_an_empty_search_finds_nothing(api_client, viewer, shop):
    assert _search(api_client, viewer, q="  ") == []
    assert _search(api_client, viewer, q="zzz_nothing") == []


def test_a_huge_description_is_found_by_its_words(api_client, viewer, db):
    # More distinct words than PostgreSQL keeps in a tsvector (1 MB), and one longer than a
    # lexeme may be (2 KB): the ingest keeps the words that fit, from the first.
    words = " ".join(f"w{i:07d}" for i in range(150_000))
    ingest_shop([_node("ledger", description=f"{'x' * 3000} {words}"), _node("orders")])
    assert [r["name"] for r in _search(api_client, viewer, q="w0000042", kind="node")] == ["ledger"]
    assert _search(api_client, viewer, q="x" * 100, kind="node") == []


def test_a_tag_with_quotes_and_backslashes_is_found_as_written(api_client, viewer, db):
    tag = 'Fi"n\\ance {q1}, x'
    ingest_shop([_node("orders", tags=[tag, "pii"])])
    assert [r["name"] for r in _search(api_client, viewer, q='fi"n\\', kind="tag")] == [tag]
    assert [r["name"] for r in _search(api_client, viewer, q=tag, kind="node")] == ["orders"]


def test_columns_and_tagged_nodes_of_every_project_by_node_name_and_bounded(api_client, viewer):
    from dbtlib.manifest import Manifest
    from lineage.services import ingest_manifest
    from tests.search.conftest import shop_manifest

    ingest_shop([_node("zeta", columns=["amount"], tags=["nightly"]), _node("beta", columns=["Amount", "amount_usd"])])
    other = shop_manifest(
        [_node("alpha", columns=["amount"], tags=["Nightly"]), _node("gamma", columns=["amount"], tags=["nightly"])]
    )
    ingest_manifest("shop_eu", Manifest.from_dict(other), actor="tests")
    results = _search(api_client, viewer, q="amount", kind="column", per_kind=10)
    assert [(r["name"], r["detail"], r["project"]) for r in results] == [
        ("amount", "model alpha", "shop_eu"),
        ("Amount", "model beta", PROJECT),
        ("amount", "model gamma", "shop_eu"),
        ("amount", "model zeta", PROJECT),
        ("amount_usd", "model beta", PROJECT),
    ]
    bounded = _search(api_client, viewer, q="amount", kind="column", per_kind=2)
    assert [(r["detail"], r["project"]) for r in bounded] == [("model alpha", "shop_eu"), ("model beta", PROJECT)]
    tagged = _search(api_client, viewer, q="nightly", kind="node", per_kind=10)
    assert [(r["name"], r["project"], r["match"]) for r in tagged] == [
        ("alpha", "shop_eu", "tag"), ("gamma", "shop_eu", "tag"), ("zeta", PROJECT, "tag"),
    ]  # fmt: skip
    assert [r["name"] for r in _search(api_client, viewer, q="nightly", kind="node", per_kind=2)] == ["alpha", "gamma"]
