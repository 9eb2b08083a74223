"""dbt's state comparison without dbt: `state:` selection over two hand-written manifests,
its refusal without a comparison manifest, and the diff summary of a slim CI run.
(tests/lineage/test_state_selection.py checks the same engine against the real `dbt ls`.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from dbtlib.commands import build_argv
from dbtlib.errors import DbtInputError, DbtSelectorError
from dbtlib.manifest import Manifest
from dbtlib.selectors import select_in_manifest
from dbtlib.state import StateDiff, compare
from dbtlib.steps import STATE_FLAGS, parse_step, selected_by_step


def _node(uid: str, raw_code: str = "", parents: tuple[str, ...] = (), macros: tuple[str, ...] = (), **fields) -> dict:
    kind, package, *_, name = uid.split(".")
    return {
        "name": name,
        "resource_type": kind,
        "package_name": package,
        "fqn": [package, name],
        "raw_code": raw_code,
        "depends_on": {"nodes": list(parents), "macros": list(macros)},
        **fields,
    }


def _section(*nodes: dict) -> dict:
    return {f"{n['resource_type']}.{n['package_name']}.{n['fqn'][-1]}": n for n in nodes}


PERSISTED = {"persist_docs": {"relation": True, "columns": True}}
PRODUCTION = {
    "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json", "project_name": "shop"},
    "nodes": _section(
        _node("model.shop.stg", "select 1", macros=("macro.shop.outer",), unrendered_config={"materialized": "view"}),
        _node("model.shop.fct", "select * from stg", ("model.shop.stg",), config=PERSISTED, description="Facts."),
        _node("model.shop.gone", "select 2"),
        _node("model.shop.tagged", "select 3", unrendered_config={"tags": ["a"], "materialized": "table"}),
        _node("model.shop.moved", "select 4", unrendered_config={"schema": "core"}),
        _node("model.shop.contracted", "select 5", contract={"enforced": True, "checksum": "c1"}),
        _node("seed.shop.big", checksum={"name": "path", "checksum": "seeds/big.csv"}),
        _node("seed.shop.small", checksum={"name": "sha256", "checksum": "aaa"}),
        _node(
            "test.shop.not_null_fct_id",
            "{{ test_not_null(**_dbt_generic_test_kwargs) }}",
            ("model.shop.fct",),
            test_metadata={"name": "not_null"},
            unrendered_config={"severity": "warn"},
        ),
    ),
    "sources": {
        "source.shop.raw.users": _node(
            "source.shop.raw.users", source_name="raw", database="db", schema="raw", identifier="users"
        )
    },
    "exposures": {"exposure.shop.dash": _node("exposure.shop.dash", parents=("model.shop.fct",), type="dashboard")},
    "macros": {
        "macro.shop.inner": {"macro_sql": "{% macro inner() %}1{% endmacro %}"},
        "macro.shop.outer": {
            "macro_sql": "{% macro outer() %}{{ inner() }}{% endmacro %}",
            "depends_on": {"macros": ["macro.shop.inner"]},
        },
    },
}


def _pull_request() -> dict:
    """PRODUCTION changed: a macro called through another (stg), a persisted description
    (fct), a model removed (gone) and one added (new_one), tags alone (tagged), a schema
    (moved), a contract (contracted), a seed hashed (small) and one compared by its unchanged
    path (big), a generic test's tags alone, a source table added."""
    data = copy.deepcopy(PRODUCTION)
    nodes = data["nodes"]
    data["macros"]["macro.shop.inner"]["macro_sql"] = "{% macro inner() %}2{% endmacro %}"
    nodes["model.shop.fct"]["description"] = "Facts, one row per user."
    del nodes["model.shop.gone"]
    nodes.update(_section(_node("model.shop.new_one", "select * from fct", ("model.shop.fct",))))
    nodes["model.shop.tagged"]["unrendered_config"]["tags"] = ["a", "b"]
    nodes["model.shop.moved"]["unrendered_config"]["schema"] = "marts"
    nodes["model.shop.contracted"]["contract"]["checksum"] = "c2"
    nodes["seed.shop.small"]["checksum"]["checksum"] = "bbb"
    nodes["test.shop.not_null_fct_id"]["unrendered_config"]["tags"] = ["x"]
    data["sources"]["source.shop.raw.orders"] = _node(
        "source.shop.raw.orders", source_name="raw", database="db", schema="raw", identifier="orders"
    )
    return data


@pytest.fixture(scope="module")
def manifests() -> tuple[Manifest, Manifest]:
    return Manifest.from_dict(_pull_request()), Manifest.from_dict(PRODUCTION)


TEST = "test.shop.not_null_fct_id"


@pytest.mark.parametrize(
    ("select", "exclude", "expected"),
    [
        ("state:new", "", ["model.shop.new_one", "source.shop.raw.orders"]),
        # a new model is modified (dbt compares it with nothing); a new source is not
        ("state:modified", "", ["model.shop.contracted", "model.shop.fct", "model.shop.moved", "model.shop.new_one",
                                "model.shop.stg", "seed.shop.small", TEST]),
        ("state:modified.macros", "", ["model.shop.stg"]),
        ("state:modified.persisted_descriptions", "", ["model.shop.fct", "model.shop.new_one", TEST]),
        ("state:modified.relation", "", ["model.shop.moved", "model.shop.new_one", "source.shop.raw.orders"]),
        ("state:modified.configs", "", ["model.shop.new_one", "source.shop.raw.orders"]),
        ("state:modified.contract", "", ["model.shop.contracted", "model.shop.new_one"]),
        ("state:modified.body", "", ["model.shop.new_one", "seed.shop.small"]),
        ("state:modified.macros+", "", ["exposure.shop.dash", "model.shop.fct", "model.shop.new_one",
                                        "model.shop.stg", TEST]),
        # the test is unmodified and, eagerly, a test of a model
        ("state:unmodified,resource_type:model", "", ["model.shop.tagged", TEST]),
        ("state:old,resource_type:seed", "state:modified", ["seed.shop.big"]),
    ],
)  # fmt: skip
def test_state_methods_compare_with_the_comparison_manifest(manifests, select, exclude, expected):
    manifest, state = manifests
    assert select_in_manifest(manifest, select, exclude, state=state) == expected


def test_the_diff_summary_lists_new_modified_removed_and_downstream(manifests):
    assert compare(*manifests) == StateDiff(
        new=("model.shop.new_one", "source.shop.raw.orders"),
        modified=("model.shop.contracted", "model.shop.fct", "model.shop.moved", "model.shop.stg", "seed.shop.small"),
        removed=("model.shop.gone",),
        downstream=("exposure.shop.dash", TEST),
    )


def test_a_manifest_compared_with_itself_has_no_change(manifests):
    manifest, _ = manifests
    assert compare(manifest, manifest) == StateDiff(new=(), modified=(), removed=(), downstream=())
    assert select_in_manifest(manifest, "state:modified", state=manifest) == []


@pytest.mark.parametrize(
    ("select", "exclude", "selector", "field"),
    [
        ("state:modified+", "", "", "select"),
        ("fct,state:new", "", "", "select"),
        ("fct", "state:modified.body", "", "exclude"),
        ("", "", "ci", "selector"),
    ],
)
def test_state_selection_without_a_comparison_manifest_is_refused(select, exclude, selector, field):
    data = {**PRODUCTION, "selectors": {"ci": {"name": "ci", "definition": {"method": "state", "value": "new"}}}}
    with pytest.raises(DbtSelectorError) as refused:
        select_in_manifest(Manifest.from_dict(data), select, exclude, selector=selector)
    assert refused.value.field == field
    assert "state: selection needs a comparison manifest (--state)" in refused.value.message


def test_an_unknown_state_is_refused_with_those_dbt_knows(manifests):
    manifest, state = manifests
    with pytest.raises(DbtSelectorError) as refused:
        select_in_manifest(manifest, "state:changed", state=state)
    assert "state takes new, old, modified, unmodified, modified.body" in refused.value.message


def test_a_step_selects_by_state_only_when_the_portal_gives_one(manifests):
    manifest, state = manifests
    parts = parse_step("dbt build --select state:modified+ --exclude resource_type:exposure")
    assert parts["select"] == "state:modified+"
    with pytest.raises(DbtSelectorError, match=r"needs a comparison manifest \(--state\)"):
        selected_by_step(manifest, parts["select"], parts["exclude"], parts["options"])
    assert selected_by_step(manifest, parts["select"], parts["exclude"], parts["options"], state=state) == [
        "model.shop.contracted", "model.shop.fct", "model.shop.moved", "model.shop.new_one", "model.shop.stg",
        "seed.shop.small", TEST,
    ]  # fmt: skip


@pytest.mark.parametrize("flag", STATE_FLAGS)
def test_a_step_may_not_set_the_state_itself(flag):
    with pytest.raises(DbtInputError) as refused:
        parse_step(f"dbt build --select state:modified+ {flag} /prod")
    assert refused.value.field == "steps"
    assert f"{flag!r} is not a flag a step may use: the portal sets the state" in refused.value.message


def _argv(command: str, **options) -> list[str]:
    paths = {"project_dir": Path("/p"), "profiles_dir": Path("/"), "target_path": Path("/t"), "log_path": Path("/l")}
    return build_argv(command, **{**paths, **options})


def test_the_portal_hands_dbt_its_state_defer_and_favor_state():
    argv = _argv("build", select="state:modified+", state=Path("/prod/target"), defer=True, favor_state=True)
    assert argv[argv.index("--state") + 1] == "/prod/target"
    assert "--defer" in argv and "--favor-state" in argv
    assert "--defer" not in _argv("ls", state=Path("/prod/target"))
    assert "--state" not in _argv("deps", state=Path("/prod/target"), defer=True)
    assert not {"--state", "--defer", "--favor-state"} & set(_argv("build"))


def test_defer_without_a_state_is_refused():
    with pytest.raises(DbtInputError) as refused:
        _argv("run", defer=True)
    assert refused.value.field == "state"
