"""GET /api/v1/runs/ and the dbt Cloud API's runs list (list, filters, full and deep pages,
each with its bounded count) with 100,000 runs stored and 50 concurrent
clients against gunicorn with the workers `runportal` starts (WEB_WORKERS, default 2; more
sync workers than cores only stretch each request's server time on CPU-bound pages).
Prints client and server (gunicorn's own request time) p95 last (budget p95 ≤ 100 ms, no
errors).

    .venv/bin/python bench/api_list.py [requests_per_client=20]
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from runs_common import p95, server_ms, setup, web_server

RUNS = 100_000
CLIENTS = 50
URLS = [
    "/api/v1/runs/",
    "/api/v1/runs/?state=failed",
    "/api/v1/runs/?project=project_3&page=20",
    "/api/v1/runs/?who=bench&command=build",
    "/api/v1/runs/?since=2026-01-01T00:00:00Z&state=success&state=failed",
    "/api/v2/accounts/1/runs/?limit=100&offset=100&order_by=-id",
    "/api/v2/accounts/1/runs/?status=10&limit=100&offset=5000",
]


def fill() -> str:
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.utils import timezone

    from accounts.models import ApiToken
    from runs.models import Run, RunState

    user = User.objects.create_user("bench")
    user.groups.add(Group.objects.get(name="viewer"))
    rng = random.Random(1)
    states = [RunState.SUCCESS] * 8 + [RunState.FAILED, RunState.ERROR, RunState.CANCELLED, RunState.TIMED_OUT]
    now = timezone.now()
    batch = []
    for i in range(RUNS):
        queued = now - timedelta(minutes=RUNS - i)
        batch.append(
            Run(
                project=f"project_{rng.randrange(10)}",
                command=rng.choice(["build", "run", "test", "ls"]),
                timeout_seconds=3600,
                source="api",
                triggered_by=user if rng.random() < 0.3 else None,
                state=rng.choice(states),
                queued_at=queued,
                started_at=queued,
                finished_at=queued + timedelta(seconds=30),
            )
        )
        if len(batch) == 5000:
            Run.objects.bulk_create(batch)
            batch = []
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_run")  # the steady state autovacuum keeps
    return ApiToken.issue(user, "bench", 1)[1]


def main(per_client: int) -> None:
    setup(seed=False)
    token = fill()
    access_log = Path(os.environ["RUNS_DIR"]) / "access.log"
    with web_server(access_log) as base:
        latencies: list[float] = []
        errors: list[str] = []

        def client(n: int) -> None:
            for i in range(per_client):
                url = URLS[(n + i) % len(URLS)]
                request = urllib.request.Request(base + url, headers={"Authorization": f"Bearer {token}"})
                started = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        response.read()
                        if response.status != 200:
                            errors.append(f"{url}: {response.status}")
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    errors.append(f"{url}: {exc}")
                latencies.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    server = server_ms(access_log, "/runs/")
    v2 = server_ms(access_log, "/api/v2/")
    latencies.sort()

    print(f"{len(latencies)} requests, {CLIENTS} clients, {RUNS:,} runs stored, errors: {len(errors)} {errors[:3]}")
    print(f"client p50 {latencies[len(latencies) // 2]:.0f} ms; server p50 {server[len(server) // 2]:.0f} ms")
    print(f"dbt Cloud API runs list: server p95 {p95(v2):.0f} ms over {len(v2)} requests")
    print(f"API list p95: server {p95(server):.0f} ms, client {p95(latencies):.0f} ms (2 shared cores)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
