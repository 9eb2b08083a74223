"""One model's SQL read into column edges (lineage/column_sql.py): what it resolves, and every
way it refuses to guess. Expected edges written by hand."""

from __future__ import annotations

import pytest

from lineage.column_sql import ColumnEdges, Relation, SqlColumns, analyse, relation_key

USERS = "source.p.raw.users"
OTHER = "seed.p.other"
RELATIONS = {
    relation_key('"db"."raw"."users"'): Relation(USERS, ("id", "email", "full_name", "Mixed Case")),
    relation_key('"db"."raw"."other"'): Relation(OTHER, ("full_name",)),
    relation_key('"db"."raw"."blank"'): Relation("seed.p.blank", ()),
}


def edges(sql: str) -> dict[str, tuple]:
    result = analyse(sql, RELATIONS)
    assert result.note == ""
    return {c.name: (c.upstream, c.resolved) for c in result.columns}


def test_relation_keys_fold_unquoted_names_and_keep_quoted_ones():
    assert relation_key('"DB"."raw".Users') == ("DB", "raw", "users")
    assert relation_key('"a""b".c') == ('a"b', "c")


def test_a_cte_a_window_function_and_a_scalar_subquery():
    sql = """
        with ranked as (
            select id, email, row_number() over (partition by email order by id) as n from "db"."raw"."users"
        )
        select id as user_id, n, (select max(full_name) from "db"."raw"."other") as latest from ranked"""
    assert edges(sql) == {
        "user_id": (((USERS, "id"),), True),
        "n": (((USERS, "email"), (USERS, "id")), True),
        "latest": (((OTHER, "full_name"),), True),
    }


def test_a_quoted_column_keeps_its_case_and_an_unquoted_one_folds():
    sql = 'select "Mixed Case" as m, EMAIL from "db"."raw"."users"'
    assert edges(sql) == {"m": (((USERS, "Mixed Case"),), True), "email": (((USERS, "email"),), True)}


def test_a_literal_is_resolved_with_no_upstream():
    assert edges("select 1 as one, 'x' as letter") == {"one": ((), True), "letter": ((), True)}


@pytest.mark.parametrize(
    "sql, expected",
    [
        (  # a table that is no node
            'select u.id, x.y from "db"."raw"."users" u join "db"."raw"."nope" x on u.id = x.id',
            [
                ColumnEdges("id", ((USERS, "id"),), True),
                ColumnEdges("y", (), False, 'reads "db"."raw"."nope", which is not a node of this project'),
            ],
        ),
        (  # which table? two candidates, one without known columns
            'select id, email from "db"."raw"."other" o join "db"."raw"."blank" b on true',
            [
                ColumnEdges("id", (), False, "could not tell which relation id comes from"),
                ColumnEdges("email", (), False, "could not tell which relation email comes from"),
            ],
        ),
        (  # `select *` from a relation whose columns are unknown
            'select * from "db"."raw"."blank"',
            [ColumnEdges("*", (), False, "select * from a relation whose columns are not known")],
        ),
    ],
)
def test_what_it_cannot_resolve_gets_a_note_and_no_edge(sql, expected):
    assert analyse(sql, RELATIONS) == SqlColumns(columns=tuple(expected))


@pytest.mark.parametrize(
    "sql, note",
    [
        ("select 1; select 2", "its compiled SQL is not one SELECT statement"),
        ("insert into t values (1)", "its compiled SQL is not one SELECT statement"),
        ("select (", "sqlglot could not read its compiled SQL: "),
        # a column its upstream's known columns lack (a stale catalog): sqlglot refuses the query
        (
            'select u.id, u.nickname from "db"."raw"."users" u',
            "sqlglot could not read its compiled SQL: Unknown column",
        ),
    ],
)
def test_sql_it_cannot_read_at_all_is_a_note_for_the_whole_model(sql, note):
    result = analyse(sql, RELATIONS)
    assert result.columns == () and result.note.startswith(note)
