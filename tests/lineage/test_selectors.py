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
