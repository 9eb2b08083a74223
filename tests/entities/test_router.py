"""Serving views per mode, the canary split, and the views' independence from table rebuilds."""

from __future__ import annotations

import psycopg
import pytest

from entities import router
from entities.rawdata import load_raw_data
from entities.rules import engine

SERVING = ("serving", "users")


@pytest.fixture
def marked_warehouse(scratch_warehouse) -> str:
    """20,000 generated users; core.fct_users is the rules output with every full_name
    prefixed 'dbt:', so each served row tells which engine it came from."""
    with psycopg.connect(scratch_warehouse) as conn:
        load_raw_data(conn, users=20_000, applications=0, seed=3)
    engine.run(scratch_warehouse, "users")
    with psycopg.connect(scratch_warehouse) as conn:
        conn.execute("create schema core")
        conn.execute("create table core.fct_users as select * from rules_engine.users")
        conn.execute("update core.fct_users set full_name = 'dbt:' || coalesce(full_name, '')")
    return scratch_warehouse


def apply(conninfo: str, mode: str, percent: int | None = None) -> str:
    with router.warehouse_transaction(conninfo) as conn:
        return router.apply(conn, router.ServingView("users", "user_id", SERVING, mode, percent))


def served(conninfo: str) -> tuple[int, set[int]]:
    """(rows served, keys served by dbt)."""
    with psycopg.connect(conninfo) as conn:
        total = conn.execute("select count(*) from serving.users").fetchone()[0]
        dbt_keys = {r[0] for r in conn.execute("select user_id from serving.users where full_name like 'dbt:%'")}
        distinct = conn.execute("select count(distinct user_id) from serving.users").fetchone()[0]
    assert distinct == total, "every key is served once"
    return total, dbt_keys


@pytest.mark.parametrize(("mode", "dbt_share"), [("rules", 0), ("shadow", 0), ("dbt", 1)])
def test_each_mode_serves_the_right_engine(marked_warehouse, mode, dbt_share):
    apply(marked_warehouse, mode)
    total, dbt_keys = served(marked_warehouse)
    assert total > 19_000
    assert len(dbt_keys) == dbt_share * total


def test_canary_split_is_close_to_n_percent_and_stable_as_n_grows(marked_warehouse):
    previous: set[int] = set()
    for percent in (5, 25, 50, 90):
        apply(marked_warehouse, "canary", percent)
        total, dbt_keys = served(marked_warehouse)
        share = 100 * len(dbt_keys) / total
        assert abs(share - percent) < 1.5, f"{share:.2f}% served by dbt at canary {percent}%"
        assert previous <= dbt_keys, "a key on dbt stays on dbt as N grows"
        previous = dbt_keys
    apply(marked_warehouse, "canary", 25)
    assert served(marked_warehouse)[1] <= previous


def test_view_sql_names_the_mode_and_split(marked_warehouse):
    sql_text = apply(marked_warehouse, "canary", 30)
    assert "hashtextextended" in sql_text and "< 3000" in sql_text
    assert '"router"."users_dbt"()' in sql_text and '"router"."users_rules"()' in sql_text
    rules_view = router.ServingView("users", "user_id", SERVING, "rules")
    assert router.view_sql(rules_view).as_string().count("users_rules") == 1


def test_switching_to_dbt_without_the_model_is_a_clear_error(scratch_warehouse):
    with psycopg.connect(scratch_warehouse) as conn:
        load_raw_data(conn, users=100, applications=0)
    engine.run(scratch_warehouse, "users")
    apply(scratch_warehouse, "rules")
    with pytest.raises(router.RouterError, match=r"core.fct_users does not exist yet"):
        apply(scratch_warehouse, "dbt")
    with psycopg.connect(scratch_warehouse) as conn:
        assert "users_rules" in router.current_definition(conn, SERVING)


def test_a_model_with_other_columns_is_refused(marked_warehouse):
    with psycopg.connect(marked_warehouse) as conn:
        conn.execute("alter table core.fct_users add column extra int")
    with pytest.raises(router.RouterError, match="unexpected extra integer"):
        apply(marked_warehouse, "canary", 10)


def test_views_survive_rebuilding_both_tables(marked_warehouse):
    """dbt replaces a table by rename + DROP ... CASCADE; the rules engine by a swap."""
    apply(marked_warehouse, "canary", 50)
    with psycopg.connect(marked_warehouse) as conn:
        conn.execute("create table core.fct_users__tmp as select * from core.fct_users")
        conn.execute("alter table core.fct_users rename to fct_users__backup")
        conn.execute("alter table core.fct_users__tmp rename to fct_users")
        conn.execute("drop table core.fct_users__backup cascade")
    engine.run(marked_warehouse, "users")
    total, dbt_keys = served(marked_warehouse)
    assert total > 19_000 and 0 < len(dbt_keys) < total
