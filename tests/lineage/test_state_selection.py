"""Slim CI's selection: for a pull request's version of a project, every `state:` selector
answers exactly what the real `dbt ls --select … --state <production's target>` lists, and
the run page's diff summary names what changed.

Production's version is the fixture project `slim`; PULL_REQUEST changes a copy of it in each
way dbt tells apart: a body, a config, a relation (alias), persisted and unpersisted
descriptions, a macro called through another, a contract, a seed (and a seed over 1 MiB, which
dbt compares by path), a generic test's severity, a singular test, a unit test, a source's
freshness, an exposure's owner, a model and a source table added, a model removed. The shop
project's semantic layer and governance are changed the same way (SHOP_EDITS). Both versions
are parsed by the real `dbt parse`.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from dbtlib.errors import DbtSelectorError
from dbtlib.manifest import Manifest
from dbtlib.selectors import select_in_manifest
from dbtlib.state import compare
from dbtlib.steps import parse_step, selected_by_step
from tests.lineage.conftest import SHOP, SHOP_DIR, run_dbt
from tests.lineage.test_selectors import dbt_ls_answers

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "slim"
# A seed over dbt's 1 MiB hashing limit: dbt keeps its path as its checksum.
BIG_ROWS = 40_000

# path → (old text, new text) replaced once in the copy, the text of a file added, or None:
# the file is deleted. Then models/schema.yml's SCHEMA_EDITS.
PULL_REQUEST: dict[str, tuple[str, str] | str | None] = {
    "models/marts/customer_orders.sql": ("count(o.id) as orders", "count(distinct o.id) as orders"),
    "models/marts/customers.sql": ("tags=['x']", "tags=['x'], materialized='view'"),
    "macros/cents.sql": ("* 100)::int", "* 100)::bigint"),
    "models/marts/new_model.sql": "select id from {{ ref('orders') }}",
    "models/marts/retired.sql": None,
    "seeds/countries.csv": ("de,Germany\n", "de,Germany\nit,Italy\n"),
    "tests/no_negative_orders.sql": ("< 0", "<= 0"),
}
SCHEMA_EDITS = (
    # descriptions: persisted (documented) and not (undocumented, whose tag does not count either)
    ("description: One row per customer.", "description: One row per customer, deduplicated."),
    ("description: The customer's name.", "description: The customer's full name."),
    ("description: One row per customer, its docs not persisted.", "description: Its docs are not persisted."),
    ("  - name: undocumented\n", "  - name: undocumented\n    config:\n      tags: [y]\n"),
    # a contract's column widened (not a breaking change: its checksum changes)
    ("data_type: varchar(50)", "data_type: varchar(100)"),
    # a generic test's severity
    ("data_tests: [not_null]\n", "data_tests:\n          - not_null:\n              config: {severity: warn}\n"),
    # a source table added, another's freshness set
    ("      - name: customers\n", "      - name: customers\n      - name: refunds\n"),
    (
        "      - name: orders\n",
        "      - name: orders\n        loaded_at_field: _loaded_at\n"
        "        freshness: {warn_after: {count: 1, period: day}}\n",
    ),
    # a unit test's given rows, an exposure's owner
    ("          - {id: 1, name: Ann}\n", "          - {id: 1, name: Ann Lee}\n"),
    ("owner: {name: Ann}", "owner: {name: Ann, email: ann@example.com}"),
    # a relation: the alias it is built as
    (
        "  - name: contracted\n",
        "  - name: renamed_relation\n    config:\n      alias: customer_ids\n  - name: contracted\n",
    ),
)


def _big_seed(project: Path, last: str) -> None:
    rows = "".join(f"{i},{'x' * 24}\n" for i in range(BIG_ROWS))
    (project / "seeds" / "big.csv").write_text(f"id,filler\n{rows}{BIG_ROWS},{last}\n")


def _production(root: Path) -> Path:
    project = root / "production"
    shutil.copytree(FIXTURE, project)
    _big_seed(project, "before")
    return project


def _pull_request(root: Path) -> Path:
    project = root / "pull_request"
    shutil.copytree(FIXTURE, project)
    _big_seed(project, "after")
    for path, change in PULL_REQUEST.items():
        file = project / path
        if isinstance(change, tuple):
            _edit(file, (change,))
        elif isinstance(change, str):
            file.write_text(change)
        else:
            file.unlink()
    _edit(project / "models" / "schema.yml", SCHEMA_EDITS)
    return project


def _edit(file: Path, edits: tuple[tuple[str, str], ...]) -> None:
    text = file.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    file.write_text(text)


# dbt ls flags (besides --state): every state method and sub-selector, with graph and set
# operators, YAML selectors of `method: state`, and what dbt refuses.
CASES = [
    "--select state:modified",
    "--select state:modified+",
    "--select 1+state:modified",
    "--select @state:modified",
    "--select state:new",
    "--select state:new+",
    "--select state:old",
    "--select state:unmodified",
    "--select state:modified.body",
    "--select +state:modified.body",
    "--select state:modified.configs",
    "--select state:modified.relation",
    "--select state:modified.persisted_descriptions",
    "--select state:modified.macros",
    "--select state:modified.macros+1",
    "--select state:modified.contract",
    "--select state:modified,tag:x",
    "--select state:modified.configs,resource_type:source",
    "--select state:modified state:new",
    "--select state:modified+ --exclude state:modified.macros",
    "--select state:modified+ --exclude tag:x",
    "--select tag:x --exclude state:unmodified",
    "--select state:modified+ --resource-type model",
    "--select state:modified+ --indirect-selection cautious",
    "--selector slim_ci",
    "--selector changed_but_macros",
    "--selector new_or_relation",
    "--select state:bogus",
]


Compared = tuple[Manifest, Manifest, dict[str, list[str] | None]]


def _dbt_compares(production: Path, pull_request: Path, cases: list[str], env: dict[str, str]) -> Compared:
    """(pull request's manifest, production's, `dbt ls <case> --state <production>` per case),
    each parsed for its own target schema, as a CI run builds into its own."""
    state_dir, target = production.parent / "production-target", pull_request.parent / "target"
    run_dbt({**env, "DBT_SCHEMA": "analytics"}, state_dir, "parse", project_dir=production)
    cases_argv = [[*shlex.split(flags), "--state", str(state_dir)] for flags in cases]
    answers = dbt_ls_answers(pull_request, target, cases_argv, {**env, "DBT_SCHEMA": "ci_pr_17"})
    state = Manifest.from_path(state_dir / "manifest.json")
    return Manifest.from_path(target / "manifest.json"), state, dict(zip(cases, answers, strict=True))


@pytest.fixture(scope="session")
def slim(tmp_path_factory, warehouse_env) -> Compared:
    root = tmp_path_factory.mktemp("slim-ci")
    return _dbt_compares(_production(root), _pull_request(root), CASES, warehouse_env)


# The shop project's semantic layer and governance, changed: what dbt compares of metrics
# (label, not filter), semantic models, saved queries (where), versioned models (latest_version),
# access and an enforced contract (a column added).
SHOP_EDITS = (
    ("label: Revenue per order", "label: Revenue / order"),
    ("filter: \"{{ Dimension('order__status') }} = 'paid'\"", "filter: \"{{ Dimension('order__status') }} != 'void'\""),
    ("description: Orders for the semantic layer.", "description: Orders, for the semantic layer."),
    (
        "      where:\n        - \"{{ Dimension('order__status') }} = 'paid'\"",
        "      where:\n        - \"{{ Dimension('order__status') }} = 'shipped'\"",
    ),
    ("latest_version: 2", "latest_version: 1"),
    ("    access: private", "    access: protected"),
    (
        "      - name: ordered_at\n        data_type: date\n",
        "      - name: ordered_at\n        data_type: date\n      - name: note\n        data_type: text\n",
    ),
)
SHOP_CASES = [
    "--select state:modified",
    "--select state:modified+",
    "--select state:modified.configs",
    "--select state:modified.contract",
    "--select state:modified,resource_type:metric",
    "--select state:unmodified --resource-type semantic_model saved_query metric exposure",
]


@pytest.fixture(scope="session")
def shop(tmp_path_factory, warehouse_env) -> Compared:
    root = tmp_path_factory.mktemp("shop-ci")
    production, pull_request = root / "production" / SHOP, root / "pull_request" / SHOP
    for copy in (production, pull_request):
        shutil.copytree(SHOP_DIR, copy)
    _edit(pull_request / "models" / "schema.yml", SHOP_EDITS)
    return _dbt_compares(production, pull_request, SHOP_CASES, warehouse_env)


@pytest.mark.parametrize("flags", SHOP_CASES)
def test_state_selection_over_the_semantic_layer_is_what_dbt_ls_lists(shop, flags):
    manifest, state, answers = shop
    parts = parse_step(f"dbt ls {flags}")
    assert answers[flags] is not None, f"dbt refused {flags}"
    assert (
        selected_by_step(manifest, parts["select"], parts["exclude"], parts["options"], state=state) == answers[flags]
    )


@pytest.mark.parametrize("flags", CASES)
def test_state_selection_is_what_dbt_ls_lists(slim, flags):
    manifest, state, answers = slim
    parts = parse_step(f"dbt ls {flags}")
    if answers[flags] is None:
        with pytest.raises(DbtSelectorError):
            selected_by_step(manifest, parts["select"], parts["exclude"], parts["options"], state=state)
        return
    assert (
        selected_by_step(manifest, parts["select"], parts["exclude"], parts["options"], state=state) == answers[flags]
    )


def test_the_table_tells_the_sub_selectors_apart(slim):
    _, _, answers = slim
    subs = [f"--select state:modified.{part}" for part in ("body", "configs", "relation", "macros", "contract")]
    assert all(answers[flags] for flags in subs)
    assert len({tuple(answers[flags] or ()) for flags in subs}) == len(subs)
    assert answers["--select state:bogus"] is None


def test_a_big_seed_is_compared_by_path_and_a_tag_or_the_target_schema_is_no_change(slim):
    """dbt hashes no seed over 1 MiB: the big seed changed, yet is not modified; neither is a
    model whose only changes are a tag and a description it does not persist, nor one built in
    the CI run's own schema rather than production's."""
    manifest, state, _ = slim
    assert manifest.nodes["model.slim.stg_customers"].relation_name.endswith('"ci_pr_17"."stg_customers"')
    assert state.nodes["model.slim.stg_customers"].relation_name.endswith('"analytics"."stg_customers"')
    modified = select_in_manifest(manifest, "state:modified", state=state)
    assert "model.slim.stg_customers" not in modified
    assert "seed.slim.countries" in modified
    assert "seed.slim.big" not in modified
    assert "model.slim.undocumented" not in modified


def test_the_diff_summary_names_what_the_pull_request_changed(slim):
    manifest, state, _ = slim
    diff = compare(manifest, state)
    assert diff.new == ("model.slim.new_model", "source.slim.raw.refunds")
    assert diff.modified == (
        "exposure.slim.customer_dashboard",
        "model.slim.contracted",
        "model.slim.customer_orders",
        "model.slim.customers",
        "model.slim.documented",
        "model.slim.orders",
        "model.slim.renamed_relation",
        "seed.slim.countries",
        "source.slim.raw.orders",
        "test.slim.no_negative_orders",
        "test.slim.not_null_customers_id.422908bfae",
        "unit_test.slim.customers.customers_keep_names",
    )
    assert diff.removed == ("model.slim.retired",)
    assert diff.downstream == (
        "model.slim.country_names",
        "model.slim.stg_orders",
        "test.slim.not_null_orders_id.84ef11d8fe",
        "test.slim.unique_orders_id.1360ecc70e",
        "unit_test.slim.customers.customers_keep_ids",
    )
