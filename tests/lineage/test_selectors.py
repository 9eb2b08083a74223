"""The portal's selector answers equal what the real `dbt ls` lists on the same project."""

from __future__ import annotations

import json

import pytest

from lineage.selectors import SelectorError, parse_selector, select
from tests.lineage.conftest import run_dbt

SELECTORS = [
    "fct_users",
    "+fct_applications",
    "stg_users+",
    "1+fct_applications",
    "2+fct_applications",
    "stg_users+3",
    "stg_users+1",
    "@stg_users",
    "users",
    "inventory_transforms.core",
    "stg_*",
    "path:models/core",
    "path:models/schema.yml",
    "models/staging/stg_users.sql",
    "resource_type:seed",
    "resource_type:source",
    "tag:nothing_tagged",
    "source:raw",
    "source:raw.users+",
    "config.materialized:view",
    "fct_users stg_users",
    "+fct_applications,resource_type:model",
    "+fct_applications,path:models/staging stg_users+1",
    "duplicate_emails",
    "resource_type:test,fct_users+",
    "package:inventory_transforms,resource_type:seed",
    "no_such_model",
]


def _dbt_ls(env, target, selector: str) -> list[str]:
    result = run_dbt(
        env, target, "--quiet", "ls", "--select", selector, "--output", "json", "--output-keys", "unique_id"
    )
    return sorted(json.loads(line)["unique_id"] for line in result.stdout.splitlines() if line.startswith("{"))


@pytest.mark.parametrize("selector", SELECTORS)
def test_portal_selection_equals_dbt_ls(snapshot, parsed_target, warehouse_env, selector):
    assert select(snapshot.pk, selector) == _dbt_ls(warehouse_env, parsed_target, selector)


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("bogus:x", '"bogus" is not a selector method'),
        ("resource_type:nope", 'unknown resource type "nope"'),
        ("@+fct_users", "cannot be combined"),
        ("tag:", "no search value"),
        ("   ", "empty"),
    ],
)
def test_bad_selectors_name_the_problem(selector, problem):
    with pytest.raises(SelectorError, match=problem):
        parse_selector(selector)


def test_tag_selection_takes_in_the_tagged_nodes_and_their_tests(db, manifest_json, tmp_path):
    from lineage.services import ingest_manifest
    from tests.lineage.conftest import PROJECT

    manifest = json.loads(json.dumps(manifest_json))
    manifest["nodes"]["model.inventory_transforms.fct_users"]["tags"] = ["pii", "core"]
    manifest["nodes"]["model.inventory_transforms.stg_users"]["tags"] = ["pii_raw"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    snapshot = ingest_manifest(PROJECT, path)
    tests_of_fct_users = {
        c for c in manifest["child_map"]["model.inventory_transforms.fct_users"] if c.startswith("test.")
    }
    assert set(select(snapshot.pk, "tag:pii")) == {"model.inventory_transforms.fct_users", *tests_of_fct_users}
    assert {"model.inventory_transforms.stg_users", "model.inventory_transforms.fct_users"} <= set(
        select(snapshot.pk, "tag:pii*")
    )
    # Each criterion takes in its tests (dbt's eager indirect selection), so the intersection keeps them.
    assert set(select(snapshot.pk, "tag:core,resource_type:model")) == {
        "model.inventory_transforms.fct_users",
        *tests_of_fct_users,
    }
