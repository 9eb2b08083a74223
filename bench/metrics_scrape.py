"""GET /metrics with 100,000 runs (3 projects, 15 jobs, every state) and 1,000,000 stored test
results (10 per run, a few percent failed), scraped from loopback by one client against
gunicorn with the workers `runportal` starts (WEB_WORKERS, default 2) in prometheus-client's
multiprocess mode, as `runportal` serves it. Prints the scrape's server time (gunicorn's own
request time) p95 last (budget ≤ 100 ms).

    .venv/bin/python bench/metrics_scrape.py [scrapes=200]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import urllib.request
from datetime import timedelta
from pathlib import Path

from runs_common import p95, server_ms, setup, web_server

RUNS = 100_000
RESULTS_PER_RUN = 10
PROJECTS = 3
JOBS_PER_PROJECT = 5

# Test results: 1,000,000 rows in one statement; ~3% fail, ~1% warn, ~0.5% error.
NODE_RESULTS_SQL = """
    INSERT INTO runs_noderesult (run_id, step, unique_id, name, resource_type, status, started_at, finished_at,
                                 execution_time, failures, message, compiled_path)
    SELECT r.id, 1, 'test.bench.t' || t, 't' || t, 'test',
           CASE WHEN h < 30 THEN 'fail' WHEN h < 40 THEN 'warn' WHEN h < 45 THEN 'error' ELSE 'pass' END,
           r.started_at, r.finished_at, 0.5, CASE WHEN h < 40 THEN 1 ELSE 0 END, '', ''
    FROM runs_run r, generate_series(1, %s) t, LATERAL (SELECT abs(hashint8(r.id * 100 + t)) %% 1000 AS h) x
"""


def fill() -> None:
    from django.db import connection
    from django.utils import timezone

    from runs.models import Environment, Job, Run, RunState

    rng = random.Random(1)
    jobs: dict[str, list[Job | None]] = {}
    for p in range(PROJECTS):
        project = f"project_{p}"
        environment = Environment.objects.create(project=project, name="dev", is_default=True)
        made = [
            Job.objects.create(project=project, name=f"job_{j}", environment=environment)
            for j in range(JOBS_PER_PROJECT)
        ]
        jobs[project] = [*made, None]  # and ad-hoc runs
    final = [RunState.SUCCESS] * 12 + [RunState.FAILED, RunState.ERROR, RunState.CANCELLED, RunState.TIMED_OUT]
    now = timezone.now()
    batch = []
    for i in range(RUNS):
        project = f"project_{rng.randrange(PROJECTS)}"
        queued = now - timedelta(minutes=RUNS - i)
        state = rng.choice(final) if i < RUNS - 60 else rng.choice([RunState.QUEUED, RunState.RUNNING])
        started = queued + timedelta(seconds=rng.expovariate(1 / 2)) if state != RunState.QUEUED else None
        finished = started + timedelta(seconds=rng.expovariate(1 / 120)) if state in final else None
        batch.append(
            Run(
                project=project,
                job=rng.choice(jobs[project]),
                command="build",
                timeout_seconds=3600,
                source="schedule",
                state=state,
                queued_at=queued,
                started_at=started,
                finished_at=finished,
            )
        )
        if len(batch) == 5000:
            Run.objects.bulk_create(batch)
            batch = []
    with connection.cursor() as cursor:
        cursor.execute(NODE_RESULTS_SQL, [RESULTS_PER_RUN])
        cursor.execute("VACUUM ANALYZE runs_run")  # the steady state autovacuum keeps
        cursor.execute("VACUUM ANALYZE runs_noderesult")


def main(scrapes: int) -> None:
    setup(seed=False)
    fill()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-metrics-")
    access_log = Path(os.environ["RUNS_DIR"]) / "access.log"
    with web_server(access_log) as base:
        for _ in range(scrapes):
            with urllib.request.urlopen(base + "/metrics", timeout=30) as response:
                body = response.read().decode()
    server = server_ms(access_log, "/metrics")
    runs = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith("portal_runs_total{"))
    failures = sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith("portal_node_failures_total{")
    )
    print(f"{len(server)} scrapes, {RUNS:,} runs and {RUNS * RESULTS_PER_RUN:,} test results stored")
    print(f"scrape: {len(body):,} bytes, {runs:,.0f} ended runs, {failures:,.0f} failed test results")
    print(f"server p50 {server[len(server) // 2]:.1f} ms")
    print(f"/metrics scrape p95: server {p95(server):.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
