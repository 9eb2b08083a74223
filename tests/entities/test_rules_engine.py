"""The legacy rules engine against the real dbt models of inventory_transforms."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import psycopg
import pytest

from entities import parity
from entities.rawdata import load_raw_data
from entities.rules import engine, functions
from entities.rules.rulesets import RULE_SETS, Derive
from tests.entities.conftest import dbt, query

pytestmark = pytest.mark.django_db


def _parity(conninfo: str, name: str) -> parity.ParityResult:
    rule_set = RULE_SETS[name]
    return parity.compute(
        conninfo,
        rules_relation=("rules_engine", name),
        dbt_relation=("core", f"fct_{name}"),
        key=rule_set.key,
        columns=[column for column, _ in rule_set.columns],
    )


def test_rules_engine_and_dbt_agree_on_the_demo_data(warehouse, users_entity):
    from entities.refresh import write_parity_report

    users = write_parity_report(users_entity)
    assert (users.rules_rows, users.dbt_rows, users.matching_rows) == (106, 106, 106)
    assert users.percent_display == "100.00"
    applications = _parity(warehouse, "applications")
    assert (applications.rules_rows, applications.dbt_rows, applications.matching_rows) == (45, 45, 45)
    assert applications.column_differences == {}
    owner_statuses = dict(query(warehouse, "select owner_status, count(*) from rules_engine.applications group by 1"))
    assert owner_statuses == {"active": 35, "departed": 6, "unknown": 4}


def test_rules_engine_output_has_the_dbt_models_columns(warehouse):
    for name in ("users", "applications"):
        statement = (
            "select column_name, data_type from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position"
        )
        assert query(warehouse, statement, ("rules_engine", name)) == query(
            warehouse, statement, ("core", f"fct_{name}")
        )


def test_a_changed_rule_is_detected_with_its_column_and_keys(warehouse):
    """The rules engine maps 'ops' to Engineering instead of Operations: parity names the
    department column and exactly the people whose surviving account says 'ops'."""
    users = RULE_SETS["users"]

    def wrong_department(value: str | None) -> str:
        return "Engineering" if (value or "").strip(" ").lower() == "ops" else functions.map_department(value)

    steps = tuple(
        dataclasses.replace(step, rule=wrong_department) if getattr(step, "name", "") == "department" else step
        for step in users.steps
    )
    changed = {**RULE_SETS, "users": dataclasses.replace(users, steps=steps)}
    engine.run(warehouse, "users", rule_sets=changed)

    result = _parity(warehouse, "users")

    expected = sorted(
        row[0]
        for row in query(
            warehouse,
            "select f.user_id from core.fct_users f join raw.users r on cast(btrim(r.id) as bigint) = f.user_id"
            " where lower(btrim(r.department)) = 'ops'",
        )
    )
    assert expected, "the demo seeds have people in 'ops'"
    assert result.column_differences == {"department": len(expected)}
    assert result.sample_keys["columns"]["department"] == [str(key) for key in expected]
    assert result.only_in_rules == result.only_in_dbt == 0
    assert result.matching_rows == 106 - len(expected)


def test_rows_only_on_one_side_are_counted_and_sampled(warehouse):
    with psycopg.connect(warehouse) as conn:
        conn.execute("delete from rules_engine.users where user_id in (1, 2)")
        conn.execute(
            "insert into rules_engine.users (user_id, email, department, is_active)"
            " values (900001, 'x@y', 'Legal', true)"
        )
    result = _parity(warehouse, "users")
    assert (result.only_in_dbt, result.only_in_rules) == (2, 1)
    assert result.sample_keys["only_in_dbt"] == ["1", "2"]
    assert result.sample_keys["only_in_rules"] == ["900001"]
    assert result.compared_rows == 107


def test_rule_functions_strip_only_spaces_like_btrim():
    assert functions.normalize_email("  Ann@X.COM ") == "ann@x.com"
    assert functions.normalize_email("   ") is None
    assert functions.normalize_email("\tann@x.com") == "\tann@x.com"  # btrim() keeps tabs
    assert functions.trimmed("") == ""
    assert functions.map_department(" R & D ") == "Engineering"
    assert functions.map_department("r  &  d") == "Unassigned"
    assert functions.map_department(None) == "Unassigned"
    assert functions.is_active(" Enabled") is True
    assert functions.is_active("suspended") is False
    assert functions.is_active(None) is False
    assert functions.to_timestamp(" 2021-01-02 03:04:05 ") == datetime(2021, 1, 2, 3, 4, 5)
    assert functions.to_timestamp("") is None


def test_duplicates_collapse_to_active_then_latest_then_lowest_id():
    raw = [
        ("1", "a@x", "A1", "eng", "inactive", "2024-01-01 00:00:00"),
        ("2", " A@X", "A2", "eng", "active", "2020-01-01 00:00:00"),
        ("3", "a@x ", "A3", "eng", "active", "2022-01-01 00:00:00"),
        ("4", "A@x", "A4", "eng", "enabled", "2022-01-01 00:00:00"),
        ("5", "b@x", "B5", "", "active", None),
        ("6", "b@x", "B6", "", "active", ""),
        ("7", "", "svc", "ops", "active", None),
    ]
    rows = sorted(engine.transform(RULE_SETS["users"], raw, {}))
    assert [(r[0], r[2]) for r in rows] == [(3, "A3"), (5, "B5")]


def test_rules_engine_and_dbt_agree_on_generated_dirty_data(scratch_warehouse, warehouse_env, tmp_path):
    with psycopg.connect(scratch_warehouse) as conn:
        load_raw_data(conn, users=6000, applications=1500, seed=7)
    env = {**warehouse_env, "DBT_DBNAME": psycopg.conninfo.conninfo_to_dict(scratch_warehouse)["dbname"]}
    dbt(["run"], env, tmp_path)
    engine.run(scratch_warehouse, "applications")
    for name in ("users", "applications"):
        result = _parity(scratch_warehouse, name)
        assert result.rules_rows > 0
        assert result.matching_rows == result.rules_rows == result.dbt_rows, (name, result)


def test_unknown_rule_set_and_missing_raw_table_are_clear_errors(scratch_warehouse):
    with pytest.raises(engine.RulesEngineError, match="no rule set named 'people'"):
        engine.run(scratch_warehouse, "people")
    with pytest.raises(engine.RulesEngineError, match="raw.users does not exist"):
        engine.run(scratch_warehouse, "users")


def test_derive_columns_are_declared_once():
    for rule_set in RULE_SETS.values():
        names = [s.name for s in rule_set.steps if isinstance(s, Derive)]
        assert len(names) == len(set(names))
        assert rule_set.key in names


def test_concurrent_rules_engine_runs_take_turns(warehouse):
    import threading

    errors: list[Exception] = []

    def refresh(name: str) -> None:
        try:
            engine.run(warehouse, name)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=refresh, args=(name,)) for name in ("users", "applications", "users")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert query(warehouse, "select count(*) from rules_engine.users")[0][0] == 106
    assert query(warehouse, "select count(*) from rules_engine.applications")[0][0] == 45
