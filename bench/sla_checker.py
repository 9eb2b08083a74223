"""The SLA checker over 1,000 SLAs (400 "succeeded by", 400 "runs no longer than", 200 on
sources) on 250 jobs with 40 runs each (10,000 runs: successes, failures, a few over-long
and still-running ones) and 10 freshness verdicts per source, on a migrated throw-away
database. Times one pass that records the
first misses, then the steady passes (nothing new), and counts each pass's queries: the
count does not grow with the SLAs. Prints the median steady pass last (budget ≤ 1 s).

    .venv/bin/python bench/sla_checker.py [passes=7]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import timedelta

from runs_common import setup

JOBS, RUNS_PER_JOB = 250, 40
DEADLINES, DURATIONS, SOURCES = 400, 400, 200
FRESHNESS_RUNS = 10  # verdicts kept per source


def populate() -> None:
    from django.utils import timezone

    from lineage.models import SourceFreshness
    from operations.models import WEEKDAYS, Sla
    from runs.models import Environment, Job, Run, RunState

    rng = random.Random(10)
    now = timezone.now()
    environment = Environment.objects.create(project="inventory_transforms", name="bench", is_default=True)
    jobs = Job.objects.bulk_create(
        Job(project="inventory_transforms", name=f"job {n}", environment=environment, steps=["dbt build"])
        for n in range(JOBS)
    )
    runs = []
    for job in jobs:
        for n in range(RUNS_PER_JOB):
            started = now - timedelta(hours=6 * n + rng.random() * 5)
            took = timedelta(minutes=rng.choice([2, 3, 5, 8, 45]))
            state = rng.choice([RunState.SUCCESS] * 8 + [RunState.FAILED, RunState.ERROR])
            finished = started + took
            if n == 0 and rng.random() < 0.1:  # still running
                state, finished = RunState.RUNNING, None
            runs.append(
                Run(
                    project=job.project,
                    timeout_seconds=7200,
                    source="schedule",
                    job=job,
                    environment=environment,
                    state=state,
                    queued_at=started,
                    started_at=started,
                    finished_at=finished,
                )  # fmt: skip
            )
    Run.objects.bulk_create(runs, batch_size=2000)
    defined = now - timedelta(days=3)
    slas = [
        Sla(name=f"deadline {n}", kind="deadline", project=jobs[n % JOBS].project, job=jobs[n % JOBS],
            deadline=(now - timedelta(minutes=rng.randrange(0, 1440))).time().replace(second=0, microsecond=0),
            time_zone=rng.choice(["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]),
            weekdays=rng.choice([list(WEEKDAYS), WEEKDAYS[:5]]), updated_at=defined)
        for n in range(DEADLINES)
    ] + [
        Sla(name=f"duration {n}", kind="duration", project=jobs[n % JOBS].project, job=jobs[(n * 7) % JOBS],
            max_minutes=rng.choice([10, 30, 60]), updated_at=defined)
        for n in range(DURATIONS)
    ] + [
        Sla(name=f"source {n}", kind="freshness", project="inventory_transforms",
            source_unique_id=f"source.inventory_transforms.raw.table_{n}", updated_at=defined)
        for n in range(SOURCES)
    ]  # fmt: skip
    Sla.objects.bulk_create(slas)
    SourceFreshness.objects.bulk_create(
        SourceFreshness(
            project="inventory_transforms",
            unique_id=f"source.inventory_transforms.raw.table_{n}",
            source=f"raw.table_{n}",
            status=rng.choice(["pass"] * 6 + ["warn", "error"]),
            run_id=run_id,
            snapshotted_at=now - timedelta(hours=6 * (FRESHNESS_RUNS - run_id)),
            max_loaded_at=now - timedelta(hours=rng.randrange(1, 48)),
        )  # fmt: skip
        for n in range(SOURCES)
        for run_id in range(FRESHNESS_RUNS)
    )


def timed_pass() -> tuple[float, int, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from operations.sla_checker import check_slas

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        outcome = check_slas()
        seconds = time.perf_counter() - started
    return seconds, len(queries), outcome


def main(passes: int) -> None:
    setup(seed=False)
    populate()
    first, queries, outcome = timed_pass()
    print(f"first pass: {first * 1000:.0f} ms, {queries} queries, {outcome}", flush=True)
    steady = []
    for number in range(1, passes + 1):
        seconds, queries, outcome = timed_pass()
        steady.append(seconds)
        print(f"pass {number}: {seconds * 1000:.0f} ms, {queries} queries, {outcome}", flush=True)
    total = DEADLINES + DURATIONS + SOURCES
    print(f"SLA checker over {total} SLAs (median of {passes} passes): {statistics.median(steady) * 1000:.0f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
