"""One selector engine, two doors: for every selector of dbt's node-selection docs, the select
API answers exactly what the real `dbt ls` lists, and a trigger is accepted exactly when that
answer is not empty (a selector dbt refuses is refused by both doors)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from dbtlib.manifest import Manifest
from dbtlib.steps import parse_step, selected_by_step
from runs.models import Run
from tests.lineage.conftest import PROJECT

# (select, exclude): methods, graph and set operators, paths, wildcards, refusals.
SELECTORS = [
    ("fct_users", ""),
    ("+fct_applications", ""),
    ("stg_users+", ""),
    ("1+fct_applications", ""),
    ("2+fct_applications", ""),
    ("stg_users+1", ""),
    ("+stg_users+", ""),
    ("@stg_users", ""),
    ("users", ""),
    ("inventory_transforms.core", ""),
    ("inventory_transforms.core.*", ""),
    ("fqn:stg_*", ""),
    ("*users", ""),
    ("path:models/core", ""),
    ("path:models/schema.yml", ""),
    ("models/schema.yml", ""),
    ("models/staging", ""),
    ("models/staging/", ""),
    ("models/staging/stg_users.sql", ""),
    ("models/*.yml", ""),
    ("models/**/*.sql", ""),
    ("path:models/staging/*", ""),
    ("seeds/users.csv", ""),
    ("stg_users.sql", ""),
    ("users.csv", ""),
    ("file:stg_users", ""),
    ("file:fct_*.sql", ""),
    ("resource_type:seed", ""),
    ("resource_type:source", ""),
    ("resource_type:test", ""),
    ("tag:nothing_tagged", ""),
    ("source:raw", ""),
    ("source:raw.users+", ""),
    ("source:inventory_transforms.raw.app*", ""),
    ("config.materialized:view", ""),
    ("config.materialized:table,resource_type:model", ""),
    ("config.severity:warn", ""),
    ("config.schema:core", ""),
    ("package:inventory_transforms,resource_type:seed", ""),
    ("package:this", ""),
    ("package:dbt_utils", ""),
    ("test_name:not_null", ""),
    ("test_name:accepted_values,fct_users+", ""),
    ("test_type:singular", ""),
    ("test_type:generic", ""),
    ("test_type:data", ""),
    ("test_type:unit", ""),
    ("exposure:*", ""),
    ("metric:inventory_transforms.*", ""),
    ("semantic_model:*", ""),
    ("saved_query:*", ""),
    ("unit_test:*", ""),
    ("fct_users stg_users", ""),
    ("+fct_applications,resource_type:model", ""),
    ("+fct_applications,path:models/staging stg_users+1", ""),
    ("duplicate_emails", ""),
    ("resource_type:test,fct_users+", ""),
    ("no_such_model", ""),
    ("stg_users+", "fct_applications"),
    ("resource_type:model", "models/staging"),
    ("fct_users", "fct_users"),
    # dbt refuses these itself: both portal doors must too.
    ("bogus:x", ""),
    ("resource_type:nope", ""),
    ("@fct_users+", ""),
    ("source:a.b.c.d", ""),
    ("test_type:nope", ""),
    ("exposure:a.b.c", ""),
    ("path:.", ""),
]


# One process asks the real dbt (its programmatic runner) `dbt ls` for every case: the same
# answers as one `dbt ls` command each, without paying dbt's start-up each time. A case dbt
# refuses is answered with null.
_DBT_LS = """
import json, sys
from dbt.cli.main import dbtRunner
common, cases = json.loads(sys.argv[1]), json.loads(sys.argv[2])
runner = dbtRunner()
assert runner.invoke(["parse", *common]).success
answers = []
for argv in cases:
    result = runner.invoke(["ls", *argv, "--output", "json", "--output-keys", "unique_id", *common])
    ok = result.success and result.exception is None
    answers.append(sorted(json.loads(line)["unique_id"] for line in result.result) if ok else None)
print(json.dumps(answers))
"""


def dbt_ls_answers(project_dir: Path, target: Path, cases: list[list[str]], env: dict[str, str]) -> list:
    """What the real `dbt ls <case>` lists for each case (null where dbt refuses it)."""
    common = [
        "--quiet", "--project-dir", str(project_dir), "--profiles-dir", str(settings.DBT_PROJECTS_DIR),
        "--target-path", str(target), "--log-path", str(target / "logs"),
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _DBT_LS, json.dumps(common), json.dumps(cases)],
        env=env, capture_output=True, text=True, timeout=900, cwd=project_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def dbt_ls(parsed_target, warehouse_env) -> dict[tuple[str, str], list[str] | None]:
    cases = [["--select", select, *(["--exclude", exclude] if exclude else [])] for select, exclude in SELECTORS]
    answers = dbt_ls_answers(settings.DBT_PROJECTS_DIR / PROJECT, parsed_target, cases, warehouse_env)
    return dict(zip(SELECTORS, answers, strict=True))


@pytest.fixture
def as_operator(api_client, operator, dbt_projects_dir):
    api_client.force_authenticate(operator)
    return api_client


@pytest.mark.parametrize(("select", "exclude"), SELECTORS, ids=[f"{s}|{e}" for s, e in SELECTORS])
def test_select_api_trigger_and_dbt_ls_agree(as_operator, snapshot, dbt_ls, select, exclude):
    expected = dbt_ls[(select, exclude)]
    answer = as_operator.get(f"/api/v1/projects/{PROJECT}/select/", {"select": select, "exclude": exclude})
    body = {"project": PROJECT, "command": "build", "select": select, "exclude": exclude}
    trigger = as_operator.post("/api/v1/runs/", body, format="json")
    if expected is None:
        assert answer.status_code == 400, answer.content
        assert answer.json()["code"] == "invalid_selector" and answer.json()["field"] == "select"
        assert trigger.status_code == 400, trigger.content
        assert trigger.json()["field"] == "select"
        assert Run.objects.count() == 0
        return
    assert answer.status_code == 200, answer.content
    assert answer.json()["nodes"] == expected
    assert answer.json()["count"] == len(expected)
    if expected:
        assert trigger.status_code == 202, trigger.content
        assert Run.objects.get().select == select
    else:
        assert trigger.status_code == 400, trigger.content
        assert trigger.json()["field"] == "select" and "matches no node" in trigger.json()["detail"]
        assert Run.objects.count() == 0


def test_the_table_covers_selections_and_refusals(dbt_ls):
    answers = list(dbt_ls.values())
    assert len(SELECTORS) >= 40
    assert sum(1 for a in answers if a) >= 30 and [] in answers and None in answers


@pytest.mark.parametrize("select", ["group:finance", "access:public", "version:latest", "result:error"])
def test_methods_the_portal_does_not_answer_are_refused_by_both_doors(as_operator, snapshot, select):
    answer = as_operator.get(f"/api/v1/projects/{PROJECT}/select/", {"select": select})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_selector"
    assert "supported: fqn, path, file, tag" in answer.json()["detail"]
    trigger = as_operator.post("/api/v1/runs/", {"project": PROJECT, "select": select}, format="json")
    assert trigger.status_code == 400 and trigger.json()["field"] == "select"
    assert "supported: fqn, path, file, tag" in trigger.json()["detail"]


@pytest.mark.parametrize("select", ["state:modified", "state:new+,tag:x"])
def test_state_selection_is_refused_by_both_doors_without_a_comparison_manifest(as_operator, snapshot, select):
    """Only a CI run compares with a state (production's manifest): the select API and a
    plain trigger have none, so they refuse `state:` as dbt does without --state."""
    answer = as_operator.get(f"/api/v1/projects/{PROJECT}/select/", {"select": select})
    assert answer.status_code == 400 and answer.json()["code"] == "invalid_selector"
    assert "state: selection needs a comparison manifest (--state)" in answer.json()["detail"]
    trigger = as_operator.post("/api/v1/runs/", {"project": PROJECT, "select": select}, format="json")
    assert trigger.status_code == 400 and trigger.json()["field"] == "select"
    assert "needs a comparison manifest" in trigger.json()["detail"]
    assert Run.objects.count() == 0


def test_an_exclude_the_portal_refuses_names_the_exclude_field(as_operator, snapshot):
    answer = as_operator.get(f"/api/v1/projects/{PROJECT}/select/", {"select": "fct_users", "exclude": "bogus:x"})
    assert answer.status_code == 400 and answer.json()["field"] == "exclude"
    trigger = as_operator.post(
        "/api/v1/runs/", {"project": PROJECT, "select": "fct_users", "exclude": "bogus:x"}, format="json"
    )
    assert trigger.status_code == 400 and trigger.json()["field"] == "exclude"


def test_tag_selection_takes_in_the_tagged_nodes_and_their_tests(db, manifest_json, tmp_path):
    from lineage.selectors import select_in_snapshot
    from lineage.services import ingest_manifest

    manifest = json.loads(json.dumps(manifest_json))
    manifest["nodes"]["model.inventory_transforms.fct_users"]["tags"] = ["pii", "core"]
    manifest["nodes"]["model.inventory_transforms.stg_users"]["tags"] = ["pii_raw"]
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    snapshot = ingest_manifest(PROJECT, path)
    tests_of_fct_users = {
        c for c in manifest["child_map"]["model.inventory_transforms.fct_users"] if c.startswith("test.")
    }
    assert set(select_in_snapshot(snapshot.pk, "tag:pii")) == {
        "model.inventory_transforms.fct_users",
        *tests_of_fct_users,
    }
    assert {"model.inventory_transforms.stg_users", "model.inventory_transforms.fct_users"} <= set(
        select_in_snapshot(snapshot.pk, "tag:pii*")
    )
    # Each criterion takes in its tests (dbt's eager indirect selection), so the intersection keeps them.
    assert set(select_in_snapshot(snapshot.pk, "tag:core,resource_type:model")) == {
        "model.inventory_transforms.fct_users",
        *tests_of_fct_users,
    }


INDIRECT_FLAGS = tuple(f" --indirect-selection {mode}" for mode in ("eager", "cautious", "buildable", "empty"))
# YAML selectors (selectors.yml, dbt's "yaml-selectors"): the project's own two, and these
# added to a copy of it: string and shorthand definitions, unions and intersections nested,
# excludes under a set operator and under a method, graph operators with depths, `selector`
# reuse, and per-criterion indirect selection.
MORE_YAML_SELECTORS = """
  - name: nested
    definition:
      intersection:
        - "@stg_users"
        - union:
            - {method: resource_type, value: test}
            - {method: tag, value: nothing_tagged}
            - fct_applications
  - name: staging_children
    definition: {method: path, value: models/staging, children: true, children_depth: 1}
  - name: one_up_buildable
    definition: {method: fqn, value: fct_applications, parents: true, parents_depth: 1, indirect_selection: buildable}
  - name: family_empty
    definition: {method: fqn, value: stg_users, childrens_parents: true, indirect_selection: empty}
  - name: seeds_shorthand
    definition: {resource_type: seed}
  - name: views
    definition: "config.materialized:view"
  - name: reuse
    definition:
      union:
        - {method: selector, value: users}
        - stg_applications
  - name: models_but
    definition:
      method: path
      value: models
      exclude:
        - fct_users
        - {method: resource_type, value: test}
  - name: from_raw
    definition: {method: source, value: raw, children: true, indirect_selection: cautious}
  - name: core_both_cautious
    definition:
      intersection:
        - {method: path, value: models/core, indirect_selection: cautious}
        - {method: fqn, value: "*", indirect_selection: cautious}
"""
YAML_SELECTORS = [
    "users", "core_without_applications", "nested", "staging_children", "one_up_buildable", "family_empty",
    "seeds_shorthand", "views", "reuse", "models_but", "from_raw", "core_both_cautious",
]  # fmt: skip
# Job steps as teams write them: each selector under every --indirect-selection, then the
# flags that change a --select's answer.
STEP_SELECTIONS = [
    *(f"--selector {name}{flag}" for name in YAML_SELECTORS for flag in ("", *INDIRECT_FLAGS)),
    "--select fct_applications+ --indirect-selection cautious",
    "--select fct_users fct_applications --indirect-selection cautious",
    "--select +fct_applications --indirect-selection buildable",
    "--select stg_users+ --indirect-selection empty",
    "--select fct_users+ --exclude fct_applications --indirect-selection cautious",
    "--selector users --resource-type model test",
    "--selector core_without_applications --exclude-resource-type test",
    "--resource-type source --exclude-resource-type source",
    "--resource-type all",
]


@pytest.fixture(scope="session")
def dbt_ls_steps(warehouse_env, dbt_projects_dir, tmp_path_factory) -> tuple[Path, dict[str, list[str] | None]]:
    """(manifest.json, `dbt ls <flags>` for each of STEP_SELECTIONS) of a copy of the project
    whose selectors.yml holds MORE_YAML_SELECTORS too."""
    root = tmp_path_factory.mktemp("yaml-selectors")
    project_dir, target = root / PROJECT, root / "target"
    shutil.copytree(settings.DBT_PROJECTS_DIR / PROJECT, project_dir, ignore=shutil.ignore_patterns("target", "logs"))
    selectors = project_dir / "selectors.yml"
    selectors.write_text(selectors.read_text() + MORE_YAML_SELECTORS)
    answers = dbt_ls_answers(project_dir, target, [shlex.split(flags) for flags in STEP_SELECTIONS], warehouse_env)
    return target / "manifest.json", dict(zip(STEP_SELECTIONS, answers, strict=True))


@pytest.mark.parametrize("flags", STEP_SELECTIONS)
def test_a_steps_selection_is_what_dbt_ls_lists(dbt_ls_steps, flags):
    """The nodes the portal says a step selects (what its validation checks) are the nodes
    the real `dbt ls` lists for the same flags, YAML selectors included."""
    manifest_path, answers = dbt_ls_steps
    parts = parse_step(f"dbt ls {flags}")
    selected = selected_by_step(Manifest.from_path(manifest_path), parts["select"], parts["exclude"], parts["options"])
    assert answers[flags] is not None, f"dbt refused {flags}"
    assert selected == answers[flags]


def test_the_step_table_tells_indirect_selections_apart(dbt_ls_steps):
    _, answers = dbt_ls_steps
    counts = {flags: len(answers[flags] or ()) for flags in STEP_SELECTIONS}
    by_mode = {counts[f"--selector core_without_applications{flag}"] for flag in ("", *INDIRECT_FLAGS)}
    assert len(by_mode) >= 3, counts
    assert all(answers[f"--selector {name}"] for name in YAML_SELECTORS)
    assert counts["--resource-type source --exclude-resource-type source"] == 0
