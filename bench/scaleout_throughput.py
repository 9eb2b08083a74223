"""Throughput of I/O-bound runs (each model sleeps in the warehouse) with two worker hosts
over one (budget ≥ 1.8×). Each host is a `runportal --worker-only` with its own
PORTAL_WORKER_NAME and RUNS_DIR (tests/hosts.py); runs go to PROJECTS copies of a one-model
project, so the write lock of a project+target never serialises them.

    .venv/bin/python bench/scaleout_throughput.py [runs=16] [sleep_seconds=10]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from runs_common import REPO, bench_user, setup, wait_final

PROJECTS = 8
WORK = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
os.environ["DBT_PROJECTS_DIR"] = str(WORK / "dbt_projects")
os.environ["QUEUE_NAME"] = f"bench-scaleout-{uuid.uuid4().hex[:8]}"


def make_projects(sleep_seconds: int) -> list[str]:
    root = Path(os.environ["DBT_PROJECTS_DIR"])
    root.mkdir()
    shutil.copy(REPO / "dbt_projects" / "profiles.yml", root / "profiles.yml")
    names = []
    for index in range(PROJECTS):
        name = f"io_bound_{index}"
        (root / name / "models").mkdir(parents=True)
        (root / name / "dbt_project.yml").write_text(
            f"name: {name}\nversion: '1.0.0'\nconfig-version: 2\nprofile: inventory_transforms\n"
            f"models:\n  {name}:\n    +materialized: table\n    +schema: {name}\n"
        )
        (root / name / "models" / "sleeper.sql").write_text(f"select 1 as id from (select pg_sleep({sleep_seconds})) s")
        names.append(name)
    return names


def timed_batch(projects: list[str], count: int) -> float:
    from runs.services import trigger_run

    user = bench_user()
    started = time.perf_counter()
    runs = [
        trigger_run(project=projects[i % len(projects)], command="run", actor=user, source="api") for i in range(count)
    ]
    for run in runs:
        if wait_final(run, poll=0.2).state != "success":
            raise SystemExit(f"run #{run.pk} ended {run.state}: {run.reason}")
    return time.perf_counter() - started


def main(count: int, sleep_seconds: int) -> None:
    projects = make_projects(sleep_seconds)
    setup(seed=False)
    from django.db import connection

    from tests.hosts import Host

    env = {**os.environ, "DATABASE_NAME": connection.settings_dict["NAME"], "QUEUE_WORKERS": "2"}
    hosts = [Host("worker", f"bench-host-{letter}", WORK, env) for letter in "ab"]
    try:
        hosts[0].start()
        timed_batch(projects, PROJECTS)  # each project parsed once on this host (partial-parse seed)
        one = timed_batch(projects, count)
        print(f"1 host (2 workers): {count} runs of {sleep_seconds} s in {one:.1f} s")
        hosts[1].start()
        two = timed_batch(projects, count)
        print(f"2 hosts (2 workers each): {count} runs of {sleep_seconds} s in {two:.1f} s")
    finally:
        for host in hosts:
            host.stop()
    print(f"throughput, 2 hosts over 1: {one / two:.2f}x (budget ≥ 1.8x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
