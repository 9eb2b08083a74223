"""dbt Cloud API v2 `GET runs/{id}/` (what the Airflow provider polls) with 100,000 runs stored,
half of them job runs, from as many concurrent clients as gunicorn has workers (`runportal`'s
WEB_WORKERS, default 2). Prints the server time (gunicorn's own request time) p95 last (budget ≤ 20 ms).

    .venv/bin/python bench/dbtcloud_run_get.py [requests_per_client=500]
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path

from api_list import RUNS, fill
from runs_common import p95, server_ms, setup, web_server

CLIENTS = int(os.environ.get("WEB_WORKERS", "2"))


def add_jobs() -> list[int]:
    """A job per project, given to every other run of it; returns every run id."""
    from django.db.models import F

    from runs.models import Environment, Job, Run

    for project in sorted(set(Run.objects.values_list("project", flat=True))):
        environment = Environment.objects.create(project=project, name="dev", is_default=True)
        job = Job.objects.create(project=project, name="nightly", environment=environment, steps=["dbt build"])
        Run.objects.annotate(odd=F("id") % 2).filter(project=project, odd=0).update(
            job=job, environment=environment, cause="Triggered via Apache Airflow"
        )
    return list(Run.objects.values_list("id", flat=True))


def main(per_client: int) -> None:
    setup(seed=False)
    token = fill()
    ids = add_jobs()
    access_log = Path(os.environ["RUNS_DIR"]) / "access.log"
    errors: list[str] = []
    with web_server(access_log) as base:

        def client(n: int) -> None:
            rng = random.Random(n)
            for _ in range(per_client):
                run_id = rng.choice(ids)
                request = urllib.request.Request(
                    f"{base}/api/v2/accounts/1/runs/{run_id}/",
                    headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        if json.load(response)["data"]["id"] != run_id:
                            errors.append(f"run {run_id}: wrong body")
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
    print(f"{len(server)} requests in {elapsed:.1f} s, {CLIENTS} clients, {RUNS:,} runs stored, errors: {len(errors)}")
    print(f"server p50 {server[len(server) // 2]:.1f} ms")
    print(f"v2 GET runs/{{id}}/ p95: server {p95(server):.1f} ms (budget 20 ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
