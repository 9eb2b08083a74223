"""Column-level lineage against edges written by hand: a jaffle_shop-shaped project and the demo
project, each seeded, run and documented by real dbt (compiled SQL, catalog), then ingested and
computed as the worker does."""

from __future__ import annotations

import json

import pytest

from lineage import columns
from lineage.models import ColumnCoverage, ColumnCoverageState, ColumnLineage, Node
from lineage.services import ingest_manifest
from tests.conftest import drain_queue
from tests.lineage.conftest import HOSTILE, HOSTILE_MODEL, JAFFLE, PROJECT, hostile_jaffle

J = "model.jaffle."
SEED = "seed.jaffle."

# Every column of every model, its upstream columns as read from the SQL by a person.
JAFFLE_EDGES = {
    "stg_customers": {  # CTEs and `select *` over a seed, expanded through the catalog
        "customer_id": {(SEED + "raw_customers", "id")},
        "first_name": {(SEED + "raw_customers", "first_name")},
        "last_name": {(SEED + "raw_customers", "last_name")},
    },
    "stg_orders": {  # aliases
        "order_id": {(SEED + "raw_orders", "id")},
        "customer_id": {(SEED + "raw_orders", "user_id")},
        "order_date": {(SEED + "raw_orders", "order_date")},
        "status": {(SEED + "raw_orders", "status")},
    },
    "stg_payments": {  # a macro: round(amount / 100.0, 2)
        "payment_id": {(SEED + "raw_payments", "id")},
        "order_id": {(SEED + "raw_payments", "order_id")},
        "payment_method": {(SEED + "raw_payments", "payment_method")},
        "amount": {(SEED + "raw_payments", "amount")},
    },
    "orders": {  # a join, and a Jinja loop over payment methods (case when inside sum)
        "order_id": {(J + "stg_orders", "order_id")},
        "customer_id": {(J + "stg_orders", "customer_id")},
        "order_date": {(J + "stg_orders", "order_date")},
        "status": {(J + "stg_orders", "status")},
        "credit_card_amount": {(J + "stg_payments", "payment_method"), (J + "stg_payments", "amount")},
        "coupon_amount": {(J + "stg_payments", "payment_method"), (J + "stg_payments", "amount")},
        "gift_card_amount": {(J + "stg_payments", "payment_method"), (J + "stg_payments", "amount")},
        "amount": {(J + "stg_payments", "amount")},
    },
    "customers": {  # CTEs over three models, aggregates, an alias, a window function
        "customer_id": {(J + "stg_customers", "customer_id")},
        "first_name": {(J + "stg_customers", "first_name")},
        "surname": {(J + "stg_customers", "last_name")},
        "first_order": {(J + "stg_orders", "order_date")},
        "number_of_orders": {(J + "stg_orders", "order_id")},
        "customer_lifetime_value": {(J + "stg_payments", "amount")},
        "value_rank": {(J + "stg_payments", "amount")},
    },
    "order_events": {  # a union: each branch feeds the column at its position
        "order_id": {(J + "stg_orders", "order_id"), (J + "stg_payments", "order_id")},
        "happened_on": {(J + "stg_orders", "order_date")},
        "event": set(),  # literals only
    },
}
# table_sizes reads pg_catalog.pg_class, which is no node: nothing of it is resolved.
UNRESOLVED = {"table_sizes": ["table_name", "estimated_rows"]}


@pytest.fixture
def jaffle(db, jaffle_target):
    snapshot = ingest_manifest(JAFFLE, jaffle_target / "manifest.json", catalog_path=jaffle_target / "catalog.json")
    columns.compute(snapshot.pk)
    return snapshot


def _edges(snapshot, name: str, prefix: str = J) -> dict[str, set[tuple[str, str]]]:
    row = ColumnLineage.objects.get(snapshot=snapshot, unique_id=prefix + name)
    return {c["name"]: {tuple(edge) for edge in c["upstream"]} for c in row.columns if c["resolved"]}


def test_every_resolved_column_has_exactly_the_hand_written_upstream(jaffle):
    for model, expected in JAFFLE_EDGES.items():
        assert _edges(jaffle, model) == expected, model


def test_sql_it_cannot_resolve_gets_no_edge_and_a_note(jaffle):
    row = ColumnLineage.objects.get(snapshot=jaffle, unique_id=J + "table_sizes")
    assert [(c["name"], c["resolved"], c["upstream"]) for c in row.columns] == [
        ("table_name", False, []),
        ("estimated_rows", False, []),
    ]
    assert all("pg_catalog" in c["note"] and "not a node of this project" in c["note"] for c in row.columns)


def test_coverage_is_the_resolved_share_of_the_models_columns(jaffle):
    coverage = ColumnCoverage.objects.get(snapshot=jaffle)
    # 3 + 4 + 4 + 8 + 7 + 3 resolved; table_sizes' 2 are not
    assert (coverage.state, coverage.resolved, coverage.known) == (ColumnCoverageState.DONE, 29, 31)
    assert (coverage.recomputed, coverage.copied) == (7, 0)


def test_node_columns_lists_downstream_across_the_project(jaffle):
    payments = Node.objects.get(snapshot=jaffle, unique_id=J + "stg_payments")
    amount = next(c for c in columns.node_columns(jaffle, payments).columns if c["name"] == "amount")
    assert amount["upstream"] == [{"node": SEED + "raw_payments", "column": "amount"}]
    assert sorted((d["node"], d["column"]) for d in amount["downstream"]) == [
        (J + "customers", "customer_lifetime_value"),
        (J + "customers", "value_rank"),
        (J + "orders", "amount"),
        (J + "orders", "coupon_amount"),
        (J + "orders", "credit_card_amount"),
        (J + "orders", "gift_card_amount"),
    ]
    assert amount["resolved"] and amount["data_type"] == "numeric"
    seed = Node.objects.get(snapshot=jaffle, unique_id=SEED + "raw_customers")
    assert [(c["name"], c["resolved"], c["downstream"]) for c in columns.node_columns(jaffle, seed).columns] == [
        ("id", True, [{"node": J + "stg_customers", "column": "customer_id"}]),
        ("first_name", True, [{"node": J + "stg_customers", "column": "first_name"}]),
        ("last_name", True, [{"node": J + "stg_customers", "column": "last_name"}]),
    ]


def test_the_column_graph_follows_a_column_both_ways(jaffle):
    graph = columns.column_graph(jaffle, J + "stg_payments", "payment_method")
    assert sorted(tuple(e[0]) + tuple(e[1]) for e in graph["edges"]) == [
        (J + "stg_payments", "payment_method", J + "orders", "coupon_amount"),
        (J + "stg_payments", "payment_method", J + "orders", "credit_card_amount"),
        (J + "stg_payments", "payment_method", J + "orders", "gift_card_amount"),
        (SEED + "raw_payments", "payment_method", J + "stg_payments", "payment_method"),
    ]
    assert not graph["truncated"] and len(graph["columns"]) == 5


def _reingest(snapshot_target, tmp_path, change_manifest=None, change_catalog=None):
    manifest = json.loads((snapshot_target / "manifest.json").read_text())
    catalog = json.loads((snapshot_target / "catalog.json").read_text())
    if change_manifest:
        change_manifest(manifest)
    if change_catalog:
        change_catalog(catalog)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    snapshot = ingest_manifest(JAFFLE, tmp_path / "manifest.json", catalog_path=tmp_path / "catalog.json")
    return columns.compute(snapshot.pk), snapshot


def test_only_models_whose_sql_or_upstream_columns_changed_are_recomputed(jaffle, jaffle_target, tmp_path):
    same, _ = _reingest(jaffle_target, tmp_path)
    assert (same.recomputed, same.copied, same.resolved, same.known) == (0, 7, 29, 31)

    def comment_stg_orders(manifest):
        manifest["nodes"][J + "stg_orders"]["compiled_code"] += "\n-- reviewed"

    sql_changed, _ = _reingest(jaffle_target, tmp_path, change_manifest=comment_stg_orders)
    assert (sql_changed.recomputed, sql_changed.copied) == (1, 6)

    def add_a_payments_column(catalog):
        columns_ = catalog["nodes"][SEED + "raw_payments"]["columns"]
        columns_["currency"] = {"type": "text", "index": 5, "name": "currency", "comment": None}

    upstream_changed, snapshot = _reingest(
        jaffle_target, tmp_path, change_manifest=comment_stg_orders, change_catalog=add_a_payments_column
    )
    assert (upstream_changed.recomputed, upstream_changed.copied) == (1, 6)  # stg_payments only
    assert _edges(snapshot, "stg_payments") == JAFFLE_EDGES["stg_payments"]
    assert _edges(snapshot, "customers") == JAFFLE_EDGES["customers"]


def test_a_parsed_manifest_has_no_compiled_sql_and_says_so(db, manifest_path):
    snapshot = ingest_manifest(PROJECT, manifest_path)
    coverage = columns.compute(snapshot.pk)
    assert coverage.resolved == 0 and coverage.known > 0
    row = ColumnLineage.objects.get(snapshot=snapshot, unique_id=f"model.{PROJECT}.fct_users")
    assert row.note == columns.NOT_COMPILED and not any(c["resolved"] for c in row.columns)


D = f"model.{PROJECT}."
RAW = f"source.{PROJECT}.raw."
DEMO_EDGES = {
    "stg_users": {  # a CTE, `accounts.*` expanded, a window function left out of the output, macros
        "user_id": {(RAW + "users", "id")},
        "email": {(RAW + "users", "email")},
        "full_name": {(RAW + "users", "full_name")},
        "department": {(RAW + "users", "department")},
        "is_active": {(RAW + "users", "status")},
        "updated_at": {(RAW + "users", "updated_at")},
    },
    "stg_applications": {
        "application_id": {(RAW + "applications", "id")},
        "application_name": {(RAW + "applications", "name")},
        "owner_email": {(RAW + "applications", "owner_email")},
        "department": {(RAW + "applications", "department")},
        "created_at": {(RAW + "applications", "created_at")},
    },
    "fct_users": {
        name: {(D + "stg_users", name)}
        for name in ("user_id", "email", "full_name", "department", "is_active", "updated_at")
    },
    "fct_applications": {  # a left join, aliases, a case over the joined table
        "application_id": {(D + "stg_applications", "application_id")},
        "application_name": {(D + "stg_applications", "application_name")},
        "owner_email": {(D + "stg_applications", "owner_email")},
        "owner_user_id": {(D + "fct_users", "user_id")},
        "owner_status": {(D + "fct_users", "user_id"), (D + "fct_users", "is_active")},
        "department": {(D + "stg_applications", "department")},
        "created_at": {(D + "stg_applications", "created_at")},
    },
}


def test_the_demo_project_resolves_every_column_as_written_by_hand(db, demo_target):
    snapshot = ingest_manifest(PROJECT, demo_target / "manifest.json", catalog_path=demo_target / "catalog.json")
    coverage = columns.compute(snapshot.pk)
    for model, expected in DEMO_EDGES.items():
        assert _edges(snapshot, model, D) == expected, model
    assert (coverage.resolved, coverage.known) == (24, 24)


def test_an_ingest_sends_the_computation_to_the_queue_when_it_commits(
    db, jaffle_target, django_capture_on_commit_callbacks
):
    drain_queue()
    with django_capture_on_commit_callbacks(execute=True):
        snapshot = ingest_manifest(JAFFLE, jaffle_target / "manifest.json")
    assert ColumnCoverage.objects.get(snapshot=snapshot).state == ColumnCoverageState.PENDING
    assert drain_queue() == ["lineage.columns.compute"]
    payments = Node.objects.get(snapshot=snapshot, unique_id=J + "stg_payments")
    pending = columns.node_columns(snapshot, payments)
    assert pending.note == columns.PENDING_NOTE and not any(c["resolved"] for c in pending.columns)


API = f"/api/v1/projects/{JAFFLE}/nodes"


def test_the_api_lists_each_column_with_its_lineage(api_client, viewer, jaffle):
    api_client.force_authenticate(viewer)
    answer = api_client.get(f"{API}/{J}orders/columns/")
    assert answer.status_code == 200
    by_name = {c["name"]: c for c in answer.json()}
    assert list(by_name)[:4] == ["order_id", "customer_id", "order_date", "status"]
    assert by_name["credit_card_amount"] == {
        "name": "credit_card_amount",
        "data_type": "numeric",
        "description": "",
        "upstream": [
            {"node": J + "stg_payments", "column": "amount"},
            {"node": J + "stg_payments", "column": "payment_method"},
        ],
        "downstream": [],
        "resolved": True,
        "note": "",
    }
    unresolved = api_client.get(f"{API}/{J}table_sizes/columns/").json()
    assert [(c["name"], c["resolved"], c["upstream"]) for c in unresolved] == [
        ("table_name", False, []),
        ("estimated_rows", False, []),
    ]
    assert api_client.get(f"{API}/{J}nope/columns/").status_code == 404
    assert api_client.get(f"{API}/{J}orders/columns/", {"snapshot": "x"}).status_code == 400
    api_client.force_authenticate(None)
    assert api_client.get(f"{API}/{J}orders/columns/").status_code in (401, 403)


def test_the_node_page_links_each_column_to_its_upstream_and_downstream(client, viewer, jaffle):
    client.force_login(viewer)
    page = client.get(f"/lineage/{JAFFLE}/nodes/{J}stg_payments/").content.decode()
    row = page[page.index('<tr id="column-amount"') :]
    row = row[: row.index("</tr>")]
    assert f'<a href="/lineage/{JAFFLE}/nodes/{SEED}raw_payments/#column-amount" data-node="{SEED}raw_payments">' in row
    assert "raw_payments.amount" in row and "orders.credit_card_amount" in row
    assert f'href="/lineage/{JAFFLE}/nodes/{J}customers/#column-value_rank"' in row
    unresolved = client.get(f"/lineage/{JAFFLE}/nodes/{J}table_sizes/").content.decode()
    assert unresolved.count('data-testid="column-unresolved"') == 2
    assert "reads pg_catalog.pg_class, which is not a node of this project" in unresolved


def test_the_explorer_column_mode_answers_a_column_graph(client, viewer, jaffle):
    client.force_login(viewer)
    url = f"/lineage/{JAFFLE}/explore/columns.json"
    node = client.get(url, {"node": "stg_payments"}).json()
    assert node == {
        "node": J + "stg_payments",
        "columns": ["payment_id", "order_id", "payment_method", "amount"],
        "note": "",
    }
    graph = client.get(url, {"node": J + "stg_orders", "column": "order_date"}).json()["graph"]
    assert sorted((n["label"], n["hops"]) for n in graph["nodes"]) == [
        ("customers.first_order", 1),
        ("order_events.happened_on", 1),
        ("orders.order_date", 1),
        ("raw_orders.order_date", -1),
        ("stg_orders.order_date", 0),
    ]
    assert client.get(url, {"node": "stg_payments", "column": "nope"}).status_code == 404
    assert client.get(url, {"node": "nope"}).status_code == 404


def test_hostile_names_and_sql_are_shown_as_text(client, viewer, db, jaffle_target, tmp_path):
    snapshot = ingest_manifest(JAFFLE, hostile_jaffle(jaffle_target, tmp_path))
    columns.compute(snapshot.pk)
    client.force_login(viewer)
    for uid in (HOSTILE_MODEL, J + "stg_payments"):
        page = client.get(f"/lineage/{JAFFLE}/nodes/{uid}/").content.decode()
        assert "<script>window.__pwned" not in page and "<img src=x" not in page
        assert "&lt;script&gt;window.__pwned" in page
    api = client.get(f"{API}/{J}stg_payments/columns/").json()
    amount = next(c for c in api if c["name"] == "amount")
    assert {"node": HOSTILE_MODEL, "column": HOSTILE} in amount["downstream"]


def test_the_project_page_shows_the_coverage(client, viewer, jaffle):
    client.force_login(viewer)
    page = client.get(f"/lineage/{JAFFLE}/").content.decode()
    shown = page[page.index('data-testid="column-coverage"') :]
    assert "<strong>29 of 31</strong> columns of its models resolved (94 %)" in shown[: shown.index("</p>")]
