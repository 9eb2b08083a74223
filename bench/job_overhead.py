"""A 3-step job run (through a real queue worker) against the sum of its steps' own dbt time
(each step's dbt process, launch to exit, as its log line "dbt exited with code N after S s"
says). The difference is what the portal adds: claim, profile, step bookkeeping, artifact
storage, lineage ingest, the final state. Prints the median overhead last (budget ≤ 1.5 s).

    .venv/bin/python bench/job_overhead.py [runs=7]
"""

from __future__ import annotations

import re
import statistics
import sys

from runs_common import bench_user, queue_cluster, setup, wait_final

STEPS = ["dbt run --select staging", "dbt test --select staging", "dbt run --select core"]
DBT_TIME = re.compile(r"^dbt exited with code \d+ after ([0-9.]+) s$")


def main(runs: int) -> None:
    setup()
    from runs.jobs import create_job, trigger_job

    user = bench_user()
    job = create_job(actor=user, source="api", project="inventory_transforms", name="bench", steps=STEPS)
    overheads = []
    with queue_cluster():
        warm = wait_final(trigger_job(job, actor=user, source="api"))
        assert warm.state == "success", warm.reason
        for number in range(1, runs + 1):
            run = wait_final(trigger_job(job, actor=user, source="api"))
            assert run.state == "success", run.reason
            log = "\n".join(chunk.text for chunk in run.log_chunks.order_by("first_line")).split("\n")
            dbt = [float(match.group(1)) for line in log if (match := DBT_TIME.match(line))]
            assert len(dbt) == len(STEPS), log
            total = (run.finished_at - run.started_at).total_seconds()
            overheads.append(total - sum(dbt))
            print(f"run {number}: {total:.2f} s in all, dbt {' + '.join(f'{t:.2f}' for t in dbt)} s", flush=True)
    print(f"median overhead of a {len(STEPS)}-step job over its steps' dbt time: {statistics.median(overheads):.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
