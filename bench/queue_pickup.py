"""Queue pickup latency: trigger → the run is `running` (dbt launched by a worker), over
sequential runs of a cheap command. Prints p50/p95 last (budget p95 ≤ 300 ms).

    .venv/bin/python bench/queue_pickup.py [runs=20]
"""

from __future__ import annotations

import statistics
import sys
import time

from runs_common import bench_user, queue_cluster, setup, wait_final


def main(count: int) -> None:
    setup()
    from runs.models import Run, RunState
    from runs.services import trigger_run

    user = bench_user()
    with queue_cluster():
        wait_final(trigger_run(project="inventory_transforms", command="parse", actor=user, source="api"))
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            run = trigger_run(project="inventory_transforms", command="parse", actor=user, source="api")
            while (
                Run.objects.filter(pk=run.pk, state=RunState.QUEUED).exists()
                or Run.objects.filter(pk=run.pk, state=RunState.STARTING).exists()
            ):
                time.sleep(0.002)
            samples.append((time.perf_counter() - started) * 1000)
            wait_final(run)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    print(f"trigger → running over {count} runs: p50 {statistics.median(samples):.0f} ms, p95 {p95:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
