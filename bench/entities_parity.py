"""Parity of rules_engine.users and core.fct_users at N rows per side (default 1,000,000),
computed inside PostgreSQL: once with identical outputs, once with 10% of rows differing
(a column changed on 5%, rows missing on either side on 5%), which exercises sampling.

    .venv/bin/python bench/entities_parity.py [--rows 1000000]

Runs in a throw-away database (test_entities_bench_warehouse). Budget:
parity of 1,000,000 rows ≤ 30 s. The figure prints last.
"""

from __future__ import annotations

import argparse
import math

import psycopg
from entities_common import bench_warehouse, dbt_build_users, drop, load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per side after deduplication")
    args = parser.parse_args()
    from entities.rawdata import people_count

    users = math.ceil(args.rows / 0.965)
    while people_count(users) < args.rows:
        users += 1
    conninfo = bench_warehouse()
    try:
        load(conninfo, users, 0)
        from entities import parity
        from entities.rules import engine
        from entities.rules.rulesets import RULE_SETS

        engine.run(conninfo, "users")
        print(f"dbt run --select +fct_users: {dbt_build_users(conninfo):.1f} s", flush=True)
        columns = [name for name, _ in RULE_SETS["users"].columns]

        def measure(label: str) -> float:
            result = parity.compute(
                conninfo, rules_relation=("rules_engine", "users"), dbt_relation=("core", "fct_users"),
                key="user_id", columns=columns,
            )  # fmt: skip
            print(
                f"{label}: {result.compared_rows:,} keys, {result.matching_rows:,} identical, "
                f"{result.mismatched_rows:,} differing, {result.only_in_rules:,} only in rules, "
                f"{result.only_in_dbt:,} only in dbt, in {result.seconds:.2f} s",
                flush=True,
            )
            return result.seconds

        identical = measure("identical outputs")
        with psycopg.connect(conninfo) as conn:
            conn.execute("update rules_engine.users set department = 'X' where user_id % 20 = 0")
            conn.execute("delete from rules_engine.users where user_id % 40 = 1")
            conn.execute("delete from core.fct_users where user_id % 40 = 2")
            conn.execute("analyze rules_engine.users; analyze core.fct_users")
        differing = measure("10% differing")
    finally:
        drop(conninfo)
    print(
        f"parity, {people_count(users):,} rows per side: {identical:.2f} s identical, "
        f"{differing:.2f} s with 10% differing (budget ≤ 30 s)"
    )


if __name__ == "__main__":
    main()
