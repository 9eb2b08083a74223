"""GET /dashboard/?window=24h|7d|30d with 100,000 runs and 1,000,000 stored node results
(half models, half tests), all within the last 30 days (RUN_RETENTION_DAYS' default keeps
no more), against gunicorn with the workers `runportal` starts. The rows are generated in
SQL (generate_series), then VACUUM ANALYZE (the steady state autovacuum keeps). The page
reads the numbers the every-minute task computes (operations.dashboard.refresh_snapshots);
this prints how long that task takes per window, then each window's page server-time p95
(gunicorn's own request time), the worst last (budget ≤ 200 ms).

    .venv/bin/python bench/dashboard.py [requests_per_window=40]
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from runs_common import p95, server_ms, setup, web_server

RUNS = 100_000
RESULTS_PER_RUN = 10  # 1,000,000 node results
PROJECTS = 10
JOBS = 30
NODES_PER_PROJECT = 50  # of each type: models and tests
WINDOWS = ["24h", "7d", "30d"]
BUDGET_MS = 200

FILL = """
INSERT INTO runs_environment (project, name, target_name, host, "user", dbname, schema, password_env, threads,
                              env_vars, is_default, created_at)
SELECT 'project_' || p, 'prod', 'prod', '', '', '', '', '', 4, '{}', true, now()
FROM generate_series(0, %(projects)s - 1) p;

INSERT INTO runs_job (project, name, description, environment_id, steps, threads, generate_docs,
                      run_source_freshness, cron, schedule_enabled, created_at, updated_at)
SELECT e.project, 'job_' || j, '', e.id, '["dbt build"]', NULL, false, false, '0 * * * *', true, now(), now()
FROM generate_series(0, %(jobs)s - 1) j
JOIN runs_environment e ON e.project = 'project_' || (j %% %(projects)s);

-- One run every ~26 s over 30 days; 97%% succeed, job runs for 80%%; queue waits of 0-5 s,
-- durations of 20-200 s.
INSERT INTO runs_run (project, kind, params, command, "select", exclude, vars, full_refresh, target,
                      timeout_seconds, source, state, reason, queued_at, enqueued_at, enqueue_attempts,
                      started_at, finished_at,
                      worker, target_path, log_path, nodes_total, nodes_done, nodes_failed, log_lines, job_id,
                      schema, cause)
SELECT 'project_' || (i %% %(projects)s), 'dbt', '{}', 'build', '', '', '{}', false, '', 3600, 'schedule',
       CASE WHEN random() < 0.97 THEN 'success' WHEN random() < 0.5 THEN 'failed' ELSE 'error' END, '',
       q, q, 1, q + random() * interval '5 seconds',
       q + interval '5 seconds' + (20 + random() * 180) * interval '1 second',
       'bench', '', '', %(per_run)s, %(per_run)s, 0, 0,
       CASE WHEN i %% 5 <> 0 THEN (SELECT min(id) FROM runs_job) + (i %% %(jobs)s) END, '', ''
FROM generate_series(1, %(runs)s) i,
     LATERAL (SELECT now() - interval '30 days' + (i * interval '30 days' / %(runs)s) - interval '1 minute' AS q) t;

-- Ten results per run: five models and five tests of its project, 3%% of the tests failing.
INSERT INTO runs_noderesult (run_id, step, unique_id, name, resource_type, status, started_at, finished_at,
                             execution_time, failures, message, compiled_path)
SELECT r.id, 1, nodes.type || '.' || r.project || '.' || nodes.type || '_' || n, nodes.type || '_' || n, nodes.type,
       CASE WHEN nodes.type = 'model' THEN 'success' WHEN random() < 0.03 THEN 'fail' ELSE 'pass' END,
       r.started_at, r.finished_at, random() * (n + 1), CASE WHEN nodes.type = 'test' THEN 0 END, '', ''
FROM runs_run r,
     LATERAL (SELECT CASE WHEN k < %(per_run)s / 2 THEN 'model' ELSE 'test' END AS type,
                     (r.id * 7 + k) %% %(nodes)s AS n
              FROM generate_series(0, %(per_run)s - 1) k) nodes;
"""


def fill() -> str:
    """The rows; returns a viewer's session cookie."""
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    with connection.cursor() as cursor:
        cursor.execute(
            FILL,
            {"projects": PROJECTS, "jobs": JOBS, "runs": RUNS, "per_run": RESULTS_PER_RUN, "nodes": NODES_PER_PROJECT},
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE runs_run")
        cursor.execute("VACUUM ANALYZE runs_noderesult")
        cursor.execute("SELECT count(*) FROM runs_run")
        runs = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM runs_noderesult")
        results = cursor.fetchone()[0]
    print(f"{runs:,} runs, {results:,} node results stored")
    user = User.objects.create_user("bench")
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def main(per_window: int) -> None:
    setup(seed=False)
    session = fill()
    from operations.dashboard import WINDOWS as DASHBOARD_WINDOWS
    from operations.dashboard import store

    figures = {}
    for window in WINDOWS:  # a server each: gunicorn's access log has the path, not the query
        computed = store(DASHBOARD_WINDOWS[window])  # what the scheduler does every minute
        print(f"refresh task ?window={window}: {computed.seconds * 1000:.0f} ms to compute")
        access_log = Path(os.environ["RUNS_DIR"]) / f"access-{window}.log"
        with web_server(access_log) as base:
            for _ in range(per_window):
                request = urllib.request.Request(
                    f"{base}/dashboard/?window={window}", headers={"Cookie": f"sessionid={session}"}
                )
                with urllib.request.urlopen(request, timeout=60) as response:
                    if response.status != 200 or b"Dashboard" not in response.read():
                        raise SystemExit(f"/dashboard/?window={window}: {response.status}")
        figures[window] = p95(server_ms(access_log, "/dashboard/"))
    for window, ms in figures.items():
        print(f"dashboard ?window={window}: server p95 {ms:.0f} ms over {per_window} requests")
    worst = max(figures.values())
    verdict = "OK" if worst <= BUDGET_MS else "OVER BUDGET"
    print(f"dashboard p95 (worst window) {worst:.0f} ms (budget ≤ {BUDGET_MS} ms): {verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
