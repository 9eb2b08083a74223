"""dbt Cloud API v2 `GET runs/{id}` as a client waiting on 50 job runs at once polls it, with
100,000 runs stored, half of them job runs: each client asks for the 50 runs in rotation, as
dbt-cloud-cli's `run get` does (no trailing slash), every other request with
`include_related=["run_steps","job"]` (the run's steps in dbt Cloud's layout, each with its
log, and its job); the Airflow provider's bare poll is the other half. Of the 50 runs half
are running (their last step too), half finished; each has two dbt steps with 150 log lines
each. As many concurrent clients as gunicorn has workers (`runportal`'s WEB_WORKERS, default
2). Prints the server time (gunicorn's own request time) p95 last (budget ≤ 20 ms).

    .venv/bin/python bench/dbtcloud_run_get.py [requests_per_client=500]
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

from api_list import RUNS, fill
from runs_common import p95, server_ms, setup, web_server

CLIENTS = int(os.environ.get("WEB_WORKERS", "2"))
WAITED_ON = 50  # the runs a client waits on
STEP_LINES = 150
RELATED = "?" + urllib.parse.urlencode({"include_related": json.dumps(["run_steps", "job"])})


def add_jobs() -> None:
    """A job per project, given to every other run of it."""
    from django.db.models import F

    from runs.models import Environment, Job, Run

    for project in sorted(set(Run.objects.values_list("project", flat=True))):
        environment = Environment.objects.create(project=project, name="dev", is_default=True)
        job = Job.objects.create(project=project, name="nightly", environment=environment, steps=["dbt build"])
        Run.objects.annotate(odd=F("id") % 2).filter(project=project, odd=0).update(
            job=job, environment=environment, cause="Triggered via Apache Airflow"
        )


def waited_on() -> list[int]:
    """The latest 50 job runs, each given two dbt steps with their logs; every other one is
    still running (its second step too). Returns their ids."""
    from django.db import connection
    from django.utils import timezone

    from runs.models import Run, RunLogChunk, RunState, RunStep, StepState

    now = timezone.now()
    runs = list(Run.objects.filter(job__isnull=False).order_by("-id")[:WAITED_ON])
    for n, run in enumerate(runs):
        running = n % 2 == 0
        run.state = RunState.RUNNING if running else RunState.SUCCESS
        run.started_at = now - timedelta(minutes=2)
        run.finished_at = None if running else now
        run.heartbeat_at = now
        run.log_lines = 2 * STEP_LINES
        run.save()
        for index, name in enumerate(["dbt run --select staging", "dbt test"], start=1):
            last = index == 2
            RunStep.objects.create(
                run=run, index=index, name=name, command=name.split()[1], invocation=index,
                state=StepState.RUNNING if running and last else StepState.SUCCESS,
                started_at=run.started_at + timedelta(seconds=60 * (index - 1)),
                finished_at=None if running and last else run.started_at + timedelta(seconds=60 * index),
                log_first_line=(index - 1) * STEP_LINES, log_end_line=index * STEP_LINES,
            )  # fmt: skip
        lines = [f"12:00:{i % 60:02d}  {i} of {2 * STEP_LINES} OK created sql view model staging.m{i}" for i in
                 range(2 * STEP_LINES)]  # fmt: skip
        RunLogChunk.objects.bulk_create(
            RunLogChunk(run=run, first_line=first, line_count=50, text="\n".join(lines[first : first + 50]))
            for first in range(0, 2 * STEP_LINES, 50)
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_run, runs_runstep, runs_runlogchunk")
    return [run.pk for run in runs]


def main(per_client: int) -> None:
    setup(seed=False)
    token = fill()
    add_jobs()
    ids = waited_on()
    access_log = Path(os.environ["RUNS_DIR"]) / "access.log"
    errors: list[str] = []
    with web_server(access_log) as base:

        def client(n: int) -> None:
            for i in range(per_client):
                run_id = ids[(n * 7 + i) % len(ids)]  # the 50 runs in rotation
                related = i % 2 == 1
                request = urllib.request.Request(
                    f"{base}/api/v2/accounts/1/runs/{run_id}{RELATED if related else ''}",
                    headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        data = json.load(response)["data"]
                    if data["id"] != run_id or len(data["run_steps"]) != (4 if related else 0):
                        errors.append(f"run {run_id}: wrong body")
                    elif related and (data["job"] is None or not data["run_steps"][3]["logs"]):
                        errors.append(f"run {run_id}: no job or no step log")
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    errors.append(f"run {run_id}: {exc}")

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    server = server_ms(access_log, "/api/v2/accounts/1/runs/")
    statuses = {line.split()[1] for line in access_log.read_text().splitlines() if "/api/v2/" in line}
    print(f"{len(server)} requests in {elapsed:.1f} s, {CLIENTS} clients, {WAITED_ON} runs polled of {RUNS:,} stored")
    print(f"statuses {sorted(statuses)}, errors: {len(errors)} {errors[:3]}")
    print(f"server p50 {server[len(server) // 2]:.1f} ms")
    print(f"v2 GET runs/{{id}} (half with run_steps and job) p95: server {p95(server):.1f} ms (budget 20 ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
