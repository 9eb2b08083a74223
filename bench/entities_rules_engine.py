"""The legacy rules engine on N generated users (default 1,000,000): raw.users streamed with a
server-side cursor, rules applied in Python, rules_engine.users written with COPY and swapped in.

    .venv/bin/python bench/entities_rules_engine.py [--users 1000000] [--repeat 2]

Runs in a throw-away database (test_entities_bench_warehouse). Budget (issue #4): 1,000,000
users "well under a minute". The figure prints last.
"""

from __future__ import annotations

import argparse
import statistics

from entities_common import bench_warehouse, drop, load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    conninfo = bench_warehouse()
    try:
        load(conninfo, args.users, 0)
        from entities.rules import engine

        timings = []
        for attempt in range(args.repeat):
            (result,) = engine.run(conninfo, "users")
            timings.append(result.seconds)
            print(
                f"run {attempt + 1}: {result.rows_read:,} raw rows -> {result.rows_written:,} rows "
                f"in {result.seconds:.1f} s ({result.rows_read / result.seconds:,.0f} rows/s)",
                flush=True,
            )
    finally:
        drop(conninfo)
    print(f"rules engine, {args.users:,} users: median {statistics.median(timings):.1f} s (budget: well under 60 s)")


if __name__ == "__main__":
    main()
