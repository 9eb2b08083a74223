"""Parity of the rules engine's output and the dbt model, computed inside PostgreSQL.

One FULL OUTER JOIN on the key compares every column with IS DISTINCT FROM; only the rows
that differ are kept (in a temporary table), so counting and sampling them is cheap and no
row ever travels to Python. Django-free.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

SAMPLE_KEYS = 50


@dataclass(frozen=True)
class ParityResult:
    rules_rows: int
    dbt_rows: int
    matching_rows: int
    only_in_rules: int
    only_in_dbt: int
    mismatched_rows: int  # rows in both with at least one differing column
    column_differences: dict[str, int]  # column -> rows in both where it differs
    sample_keys: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def compared_rows(self) -> int:
        """Distinct keys on either side."""
        return self.matching_rows + self.mismatched_rows + self.only_in_rules + self.only_in_dbt


class ParityError(Exception):
    """Parity cannot be computed (a side is missing)."""


_BOTH = sql.SQL("not only_rules and not only_dbt")


def _diff_table(rules: sql.Identifier, dbt: sql.Identifier, key: str, compared: list[str]) -> sql.Composed:
    """The keys on one side only, or in both with a column that differs (one flag each)."""
    rk, dk = sql.Identifier("r", key), sql.Identifier("d", key)
    differs = [
        sql.SQL("({} is distinct from {})").format(sql.Identifier("r", c), sql.Identifier("d", c)) for c in compared
    ]
    flags = [sql.SQL("{} as {}").format(e, _flag(i)) for i, e in enumerate(differs)]
    return sql.SQL(
        "create temporary table parity_diff on commit drop as"
        " select coalesce({rk}::text, {dk}::text) as key, coalesce({rk}, {dk}) as sort_key,"
        " {dk} is null as only_rules, {rk} is null as only_dbt, {flag_columns}"
        " from {rules} as r full outer join {dbt} as d on {rk} = {dk}"
        " where {rk} is null or {dk} is null or {any_differs}"
    ).format(
        rk=rk,
        dk=dk,
        rules=rules,
        dbt=dbt,
        flag_columns=sql.SQL(", ").join(flags) if compared else sql.SQL("false as diff_none"),
        any_differs=sql.SQL(" or ").join(differs) if compared else sql.SQL("false"),
    )


def _flag(index: int) -> sql.Identifier:
    return sql.Identifier(f"diff_{index}")


def _counts(compared: list[str]) -> sql.Composed:
    per_column = [sql.SQL(", count(*) filter (where {} and {})").format(_flag(i), _BOTH) for i in range(len(compared))]
    return sql.SQL(
        "select count(*) filter (where only_rules), count(*) filter (where only_dbt),"
        " count(*) filter (where {both}){per_column} from parity_diff"
    ).format(both=_BOTH, per_column=sql.SQL("").join(per_column))


def _sample(condition: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "select coalesce(array_agg(key order by sort_key), '{{}}') from"
        " (select key, sort_key from parity_diff where {} order by sort_key limit {}) as sample"
    ).format(condition, sql.Literal(SAMPLE_KEYS))


def compute(
    conninfo: str,
    *,
    rules_relation: tuple[str, str],
    dbt_relation: tuple[str, str],
    key: str,
    columns: list[str],
    application_name: str = "portal-parity",
) -> ParityResult:
    """`application_name` marks the connection (a run's, so cancel and timeout terminate it)."""
    started = time.perf_counter()
    compared = [c for c in columns if c != key]
    rules, dbt = sql.Identifier(*rules_relation), sql.Identifier(*dbt_relation)
    try:
        with (
            psycopg.connect(conninfo, application_name=application_name) as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            cursor.execute("set local work_mem = '256MB'")
            rules_rows = cursor.execute(sql.SQL("select count(*) from {}").format(rules)).fetchone()[0]
            dbt_rows = cursor.execute(sql.SQL("select count(*) from {}").format(dbt)).fetchone()[0]
            cursor.execute(_diff_table(rules, dbt, key, compared))
            only_rules, only_dbt, mismatched, *per_column = cursor.execute(_counts(compared)).fetchone()
            samples: dict[str, object] = {
                "only_in_rules": cursor.execute(_sample(sql.SQL("only_rules"))).fetchone()[0] if only_rules else [],
                "only_in_dbt": cursor.execute(_sample(sql.SQL("only_dbt"))).fetchone()[0] if only_dbt else [],
                "columns": {
                    column: cursor.execute(_sample(sql.SQL("{} and {}").format(_flag(i), _BOTH))).fetchone()[0]
                    for i, (column, count) in enumerate(zip(compared, per_column, strict=True))
                    if count
                },
            }
    except psycopg.errors.UndefinedTable as error:
        raise ParityError(f"cannot compare: {error.diag.message_primary}") from error
    return ParityResult(
        rules_rows=rules_rows,
        dbt_rows=dbt_rows,
        matching_rows=rules_rows - only_rules - mismatched,
        only_in_rules=only_rules,
        only_in_dbt=only_dbt,
        mismatched_rows=mismatched,
        column_differences={c: n for c, n in zip(compared, per_column, strict=True) if n},
        sample_keys=samples,
        seconds=time.perf_counter() - started,
    )
