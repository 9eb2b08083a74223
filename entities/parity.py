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


def compute(
    conninfo: str,
    *,
    rules_relation: tuple[str, str],
    dbt_relation: tuple[str, str],
    key: str,
    columns: list[str],
) -> ParityResult:
    started = time.perf_counter()
    compared = [c for c in columns if c != key]
    r, d = sql.Identifier("r"), sql.Identifier("d")
    rk, dk = sql.Identifier("r", key), sql.Identifier("d", key)
    differs = [
        sql.SQL("({} is distinct from {})").format(sql.Identifier("r", c), sql.Identifier("d", c)) for c in compared
    ]
    flags = [sql.Identifier(f"diff_{i}") for i in range(len(compared))]
    create = sql.SQL(
        "create temporary table parity_diff on commit drop as"
        " select coalesce({rk}::text, {dk}::text) as key, coalesce({rk}, {dk}) as sort_key,"
        " {dk} is null as only_rules, {rk} is null as only_dbt, {flag_columns}"
        " from {rules} as {r} full outer join {dbt} as {d} on {rk} = {dk}"
        " where {rk} is null or {dk} is null or {any_differs}"
    ).format(
        rk=rk,
        dk=dk,
        r=r,
        d=d,
        rules=sql.Identifier(*rules_relation),
        dbt=sql.Identifier(*dbt_relation),
        flag_columns=sql.SQL(", ").join(sql.SQL("{} as {}").format(e, n) for e, n in zip(differs, flags, strict=True))
        if compared
        else sql.SQL("false as diff_none"),
        any_differs=sql.SQL(" or ").join(differs) if compared else sql.SQL("false"),
    )
    both = sql.SQL("not only_rules and not only_dbt")
    counts = sql.SQL(
        "select count(*) filter (where only_rules), count(*) filter (where only_dbt),"
        " count(*) filter (where {both}){per_column} from parity_diff"
    ).format(
        both=both,
        per_column=sql.SQL("").join(sql.SQL(", count(*) filter (where {} and {})").format(f, both) for f in flags),
    )

    def sample(condition: sql.Composable) -> sql.Composed:
        return sql.SQL(
            "select coalesce(array_agg(key order by sort_key), '{{}}') from"
            " (select key, sort_key from parity_diff where {} order by sort_key limit {}) as sample"
        ).format(condition, sql.Literal(SAMPLE_KEYS))

    try:
        with psycopg.connect(conninfo) as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute("set local work_mem = '256MB'")
            rules_rows = cursor.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(*rules_relation))
            ).fetchone()[0]
            dbt_rows = cursor.execute(
                sql.SQL("select count(*) from {}").format(sql.Identifier(*dbt_relation))
            ).fetchone()[0]
            cursor.execute(create)
            only_rules, only_dbt, mismatched, *per_column = cursor.execute(counts).fetchone()
            samples: dict[str, object] = {
                "only_in_rules": cursor.execute(sample(sql.SQL("only_rules"))).fetchone()[0] if only_rules else [],
                "only_in_dbt": cursor.execute(sample(sql.SQL("only_dbt"))).fetchone()[0] if only_dbt else [],
            }
            column_samples = {}
            for column, flag, count in zip(compared, flags, per_column, strict=True):
                if count:
                    condition = sql.SQL("{} and {}").format(flag, both)
                    column_samples[column] = cursor.execute(sample(condition)).fetchone()[0]
            samples["columns"] = column_samples
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
