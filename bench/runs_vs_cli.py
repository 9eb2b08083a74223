"""Portal-triggered `dbt build` of inventory_transforms (trigger → final state, through a
real queue worker) vs the same `dbt build` at a shell, interleaved. Prints the median
ratio last (budget ≤ 1.0; ≤ 0.5 within reach).

    .venv/bin/python bench/runs_vs_cli.py [pairs=7]
"""

from __future__ import annotations

import statistics
import sys
import time

from runs_common import bench_user, queue_cluster, setup, shell_dbt, wait_final


def main(pairs: int) -> None:
    env = setup()
    from runs.services import trigger_run

    user = bench_user()
    with queue_cluster():
        warm = wait_final(trigger_run(project="inventory_transforms", command="build", actor=user, source="api"))
        assert warm.state == "success", warm.reason
        shell_dbt("build", env)
        ratios = []
        for pair in range(1, pairs + 1):
            started = time.perf_counter()
            run = wait_final(trigger_run(project="inventory_transforms", command="build", actor=user, source="api"))
            portal = time.perf_counter() - started
            assert run.state == "success", run.reason
            shell = shell_dbt("build", env)
            ratios.append(portal / shell)
            print(f"pair {pair}: portal {portal:.2f} s, shell {shell:.2f} s, ratio {portal / shell:.2f}", flush=True)
    print(f"median ratio portal/shell over {pairs} pairs: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
