"""A small uploaded project, `shop`, whose names exercise each match tier of the site
search, plus a job, an environment and a run."""

from __future__ import annotations

import pytest

PROJECT = "shop"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _node(name: str, resource_type: str = "model", *, tags=(), columns=(), description: str = "", **extra) -> dict:
    uid = extra.pop("unique_id", f"{resource_type}.{PROJECT}.{name}")
    return {
        "unique_id": uid,
        "resource_type": resource_type,
        "name": name,
        "package_name": PROJECT,
        "path": f"{name}.sql",
        "original_file_path": f"models/{name}.sql",
        "fqn": [PROJECT, name],
        "tags": list(tags),
        "description": description,
        "columns": {c: {"name": c, "description": f"The {c.replace('_', ' ')}."} for c in columns},
        "config": {"enabled": True, "materialized": "table", "tags": list(tags)},
        "depends_on": {"macros": [], "nodes": extra.pop("depends", [])},
        "raw_code": "select 1",
        **extra,
    }


# Searching "orders": exact, prefix, substring (a model, then a test), tagged, a column, described.
NODES = [
    _node("orders", tags=["finance"], columns=["order_id", "customer_id"], description="One row per order."),
    _node("orders_daily", description="Daily totals."),
    _node("stg_orders", description="Orders as loaded."),
    _node(
        "not_null_orders_order_id",
        "test",
        unique_id=f"test.{PROJECT}.not_null_orders_order_id.1a2b",
        depends=[f"model.{PROJECT}.orders"],
        attached_node=f"model.{PROJECT}.orders",
        column_name="order_id",
        test_metadata={"name": "not_null", "kwargs": {"column_name": "order_id"}},
    ),
    _node("customers", tags=["orders", "pii"], columns=["customer_id", "email"], description="People."),
    _node("payments", columns=["payment_id", "orders"], description="Payments."),
    _node("refunds", columns=["refund_id"], description="Refunds of returned orders, one row each."),
    _node("hostile", columns=["hostile_col"], description=HOSTILE, unique_id=f"model.{PROJECT}.hostile_name"),
]
NODES[-1]["name"] = HOSTILE


def shop_manifest(nodes: list[dict] | None = None, invocation: str = "1") -> dict:
    nodes = NODES if nodes is None else nodes
    return {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.11.0",
            "generated_at": "2026-12-01T12:00:00Z",
            "invocation_id": f"00000000-0000-0000-0000-{int(invocation):012d}",
            "project_name": PROJECT,
        },
        "nodes": {n["unique_id"]: n for n in nodes},
        "sources": {},
        "macros": {},
        "docs": {},
        "exposures": {},
        "metrics": {},
        "groups": {},
        "selectors": {},
        "disabled": {},
        "parent_map": {},
        "child_map": {},
        "semantic_models": {},
        "saved_queries": {},
        "unit_tests": {},
    }


def ingest_shop(nodes: list[dict] | None = None, invocation: str = "1"):
    from dbtlib.manifest import Manifest
    from lineage.services import ingest_manifest

    return ingest_manifest(PROJECT, Manifest.from_dict(shop_manifest(nodes, invocation)), actor="tests")


@pytest.fixture
def shop(db):
    """The `shop` snapshot, an environment `orders_env`, a job `orders nightly` and a run of it."""
    from runs.models import Environment, Job, Run

    snapshot = ingest_shop()
    env = Environment.objects.create(project=PROJECT, name="orders_env", target_name="prod")
    job = Job.objects.create(
        project=PROJECT, name="orders nightly", description="Builds the orders marts.", environment=env,
        steps=["dbt build"],
    )  # fmt: skip
    run = Run.objects.create(project=PROJECT, command="build", timeout_seconds=600, source="web", job=job)
    return {"snapshot": snapshot, "environment": env, "job": job, "run": run}
