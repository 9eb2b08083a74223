"""Job steps as teams write them (dbtlib/steps.py): the flags a step may carry, each checked
and turned into argv words, the flags refused by name, and YAML selectors resolved by the one
selector engine. No Django, database or dbt process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbtlib.commands import build_argv
from dbtlib.errors import DbtInputError, DbtSelectorError
from dbtlib.manifest import Manifest
from dbtlib.selectors import select_in_manifest
from dbtlib.steps import ELSEWHERE_FLAGS, parse_step, step_text
from tests.dbtlib.test_library import MANIFEST

PATHS = {"project_dir": Path("/p"), "profiles_dir": Path("/p"), "target_path": Path("/t"), "log_path": Path("/l")}


def argv_of(step: str) -> list[str]:
    parts = parse_step(step)
    argv = build_argv(
        parts["command"],
        **PATHS,
        select=parts["select"],
        exclude=parts["exclude"],
        full_refresh=parts["full_refresh"],
        **parts["options"],
    )
    assert all(isinstance(word, str) for word in argv)
    return argv


def test_a_step_with_every_new_flag_becomes_a_list_of_validated_words():
    step = (
        "dbt build --selector users --indirect-selection Cautious -x --warn-error --empty "
        "--resource-type model seed --exclude-resource-type test"
    )
    parts = parse_step(step)
    assert parts["options"] == {
        "selector": "users",
        "indirect_selection": "cautious",
        "fail_fast": True,
        "warn_error": True,
        "empty": True,
        "resource_types": ["model", "seed"],
        "exclude_resource_types": ["test"],
    }
    argv = argv_of(step)
    assert argv[argv.index("--selector") + 1] == "users"
    assert argv[argv.index("--indirect-selection") + 1] == "cautious"
    assert [argv[i + 1] for i, word in enumerate(argv) if word == "--resource-type"] == ["model", "seed"]
    assert argv[argv.index("--exclude-resource-type") + 1] == "test"
    assert {"--fail-fast", "--warn-error", "--empty"} <= set(argv)
    assert "--select" not in argv and argv.count("--project-dir") == 1


@pytest.mark.parametrize(
    "step",
    [
        "dbt ls --resource-type model --resource-type seed",
        "dbt ls --resource-types model seed",
        "dbt ls --resource-type=model --resource-type seed model",
    ],
)
def test_resource_types_repeat_or_share_one_flag_as_dbt_takes_them(step):
    assert parse_step(step)["options"] == {"resource_types": ["model", "seed"]}


def test_equals_forms_and_the_existing_flags_still_parse():
    parts = parse_step("dbt run -s +fct_users --exclude stg_users -f --fail-fast --vars '{\"a\": 1}'")
    assert (parts["select"], parts["exclude"], parts["full_refresh"]) == ("+fct_users", "stg_users", True)
    assert parts["vars"] == '{"a": 1}' and parts["options"] == {"fail_fast": True}
    assert parse_step("dbt test --indirect-selection=empty --selector=x")["options"] == {
        "indirect_selection": "empty",
        "selector": "x",
    }


@pytest.mark.parametrize("flag", ELSEWHERE_FLAGS)
def test_flags_that_point_dbt_elsewhere_are_refused_by_name(flag):
    attached = f"{flag}=/elsewhere" if flag.startswith("--") else f"{flag}/elsewhere"
    for step in (f"dbt build {flag} /elsewhere", f"dbt build --select a {attached}"):
        with pytest.raises(DbtInputError) as refused:
            parse_step(step)
        assert refused.value.field == "steps"
        assert f"'{flag}' is not a flag a step may use: it would point dbt at another" in refused.value.message


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ("dbt build --selector users --select fct_users", "--selector and --select cannot be used together"),
        ("dbt build --exclude a --selector users", "--selector and --exclude cannot be used together"),
        ("dbt build --selector a --selector b", "--selector is given twice"),
        ("dbt build --selector", "--selector needs a value"),
        ("dbt build --selector '../x'", "'../x' is not a selector name"),
        ("dbt build --selector 'a;id'", "'a;id' is not a selector name"),
        ("dbt build --indirect-selection lazy", "--indirect-selection is one of eager, cautious, buildable, empty"),
        ("dbt build --resource-type table", "--resource-type takes model, seed, snapshot, test, unit_test, source"),
        ("dbt build --exclude-resource-type all", "not 'all'"),
        ("dbt ls --exclude-resource-type default", "not 'default'"),
        ("dbt build --resource-type", "--resource-type needs a resource type"),
        ("dbt run --resource-type model", "dbt run does not take --resource-type"),
        ("dbt seed --empty", "dbt seed does not take --empty"),
        ("dbt test --empty", "dbt test does not take --empty"),
        ("dbt parse --selector users", "dbt parse does not take --selector"),
        ("dbt deps --indirect-selection cautious", "dbt deps does not take --indirect-selection"),
        ("dbt build --fail-fast=yes", "--fail-fast takes no value"),
        ("dbt build --no-fail-fast", "'--no-fail-fast' is not a flag a step may use (--select"),
        ("dbt build --warn-error-options '{}'", "'--warn-error-options' is not a flag a step may use"),
    ],
)
def test_bad_flags_are_refused_naming_the_step_and_the_flag(step, words):
    with pytest.raises(DbtInputError) as refused:
        parse_step(step)
    assert refused.value.field == "steps"
    assert refused.value.message.startswith(f"step {step!r}: ")
    assert words in refused.value.message


def test_global_flags_go_with_every_command_and_a_step_reads_back_as_typed():
    for command in ("build", "run", "seed", "parse", "deps", "docs generate", "source freshness"):
        assert parse_step(f"dbt {command} -x --warn-error")["options"] == {"fail_fast": True, "warn_error": True}
    step = "dbt build --selector users --indirect-selection buildable --resource-type model --full-refresh --empty"
    parts = parse_step(step)
    assert (
        step_text(parts["command"], parts["select"], parts["exclude"], parts["full_refresh"], parts["options"]) == step
    )


# --- YAML selectors through the one engine ---------------------------------------------------

SELECTORS = {
    "core": {"name": "core", "definition": {"method": "path", "value": "models/core"}},
    "core_cautious": {
        "name": "core_cautious",
        "definition": {"method": "path", "value": "models/core", "indirect_selection": "cautious"},
    },
    "staging_up": {
        "name": "staging_up",
        "definition": {
            "union": [
                {"method": "fqn", "value": "fct_users", "parents": True, "parents_depth": 1},
                {"exclude": [{"resource_type": "test"}, "unit_test:*"]},
            ]
        },
    },
    "again": {"name": "again", "definition": {"intersection": [{"method": "selector", "value": "core"}, "tag:*"]}},
}


def manifest(selectors: dict = SELECTORS) -> Manifest:
    return Manifest.from_dict({**MANIFEST, "selectors": selectors})


@pytest.mark.parametrize(
    ("name", "indirect", "expected"),
    [
        ("core", "eager", ["model.shop.fct_users", "test.shop.no_dupes", "test.shop.not_null_fct_users_id.abc",
                           "unit_test.shop.fct_users.counts"]),
        # no_dupes also reads stg_users, outside models/core: cautious leaves it out
        ("core", "cautious", ["model.shop.fct_users", "test.shop.not_null_fct_users_id.abc",
                              "unit_test.shop.fct_users.counts"]),
        ("core_cautious", "eager", ["model.shop.fct_users", "test.shop.not_null_fct_users_id.abc",
                                    "unit_test.shop.fct_users.counts"]),
        ("core", "buildable", ["model.shop.fct_users", "test.shop.no_dupes", "test.shop.not_null_fct_users_id.abc",
                               "unit_test.shop.fct_users.counts"]),
        # the tests in models/core/schema.yml are in models/core themselves
        ("core", "empty", ["model.shop.fct_users", "test.shop.not_null_fct_users_id.abc",
                           "unit_test.shop.fct_users.counts"]),
        ("staging_up", "eager", ["model.shop.fct_users", "model.shop.stg_users"]),
        # each criterion takes in its tests: the intersection keeps the test both take in, as dbt does
        ("again", "eager", ["test.shop.no_dupes"]),
    ],
)  # fmt: skip
def test_yaml_selectors_select_with_the_engine_of_select(name, indirect, expected):
    assert select_in_manifest(manifest(), selector=name, indirect_selection=indirect) == expected


def test_an_unknown_selector_is_refused_by_name_with_those_the_project_has():
    with pytest.raises(DbtSelectorError) as refused:
        select_in_manifest(manifest(), selector="nightly")
    assert refused.value.field == "selector"
    assert refused.value.message == (
        "the project has no selector 'nightly' (selectors.yml defines: core, core_cautious, staging_up, again)"
    )
    with pytest.raises(DbtSelectorError, match=re.escape("no selector 'core' (it has no selectors.yml)")):
        select_in_manifest(Manifest.from_dict(MANIFEST), selector="core")


@pytest.mark.parametrize(
    ("definition", "words"),
    [
        ({"union": ["a"], "intersection": ["b"]}, "only a single 'union' or 'intersection' key"),
        ({"union": "fct_users"}, '"union" must be a list'),
        ({"union": ["fct_users", {"exclude": ["a"]}, {"exclude": ["b"]}]}, "takes one exclude"),
        ({"method": "result", "value": "error"}, '"result" is a dbt selector method the portal does not answer'),
        ({"method": "fqn", "value": "a", "indirect_selection": "lazy"}, "indirect_selection 'lazy' is not one of"),
        ({"method": "fqn", "value": "a", "parents_depth": "x"}, "parents_depth must be a whole number"),
        ({"method": "selector", "value": "later"}, "names the selector 'later', not defined before it"),
        ({"value": "a", "children": True}, 'expected one key, or "method" and "value"'),
        (["fct_users"], "expected union, intersection, a string or a mapping"),
    ],
)
def test_yaml_selectors_dbt_refuses_are_refused_naming_the_selector(definition, words):
    selectors = {"bad": {"name": "bad", "definition": definition}, "later": {"name": "later", "definition": "a"}}
    with pytest.raises(DbtSelectorError) as refused:
        select_in_manifest(manifest(selectors), selector="bad")
    assert refused.value.message.startswith("selector 'bad' in selectors.yml is not valid: ")
    assert words in refused.value.message, refused.value.message


def test_the_default_selector_applies_when_a_step_selects_nothing_else():
    selectors = {**SELECTORS, "core": {**SELECTORS["core"], "default": True}}
    assert select_in_manifest(manifest(selectors)) == select_in_manifest(manifest(), selector="core")
    assert "source.shop.raw.users" in select_in_manifest(manifest(selectors), "source:*")
    assert "exposure.shop.dash" in select_in_manifest(manifest())
