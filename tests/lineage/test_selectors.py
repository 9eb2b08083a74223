"""The portal's selector answers equal what the real `dbt ls` lists on the same project."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.conf import settings

from lineage.selectors import SelectorError, parse_selector, select
from tests.lineage.conftest import PROJECT

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


# One process asks the real dbt (its programmatic runner) `dbt ls --select` for every selector:
# the same answers as 27 `dbt ls` commands, without paying dbt's start-up 27 times.
_DBT_LS_ALL = """
import json, sys
from dbt.cli.main import dbtRunner
common, selectors = json.loads(sys.argv[1]), sys.argv[2:]
answers = {}
for selector in selectors:
    result = dbtRunner().invoke(["ls", "--select", selector, "--output", "json", "--output-keys", "unique_id", *common])
    if not result.success:
        sys.exit(f"dbt ls --select {selector!r} failed: {result.exception}")
    answers[selector] = sorted(json.loads(line)["unique_id"] for line in result.result)
print(json.dumps(answers))
"""


@pytest.fixture(scope="session")
def dbt_ls(parsed_target, warehouse_env) -> dict[str, list[str]]:
    project_dir = settings.DBT_PROJECTS_DIR / PROJECT
    common = [
        "--quiet", "--project-dir", str(project_dir), "--profiles-dir", str(settings.DBT_PROJECTS_DIR),
        "--target-path", str(parsed_target), "--log-path", str(parsed_target / "logs"),
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _DBT_LS_ALL, json.dumps(common), *SELECTORS],
        env=warehouse_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project_dir,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("selector", SELECTORS)
def test_portal_selection_equals_dbt_ls(snapshot, dbt_ls, selector):
    assert select(snapshot.pk, selector) == dbt_ls[selector]


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
