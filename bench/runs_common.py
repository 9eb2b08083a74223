"""Shared setup of the runs benches: throw-away metadata and warehouse databases on the
portal's PostgreSQL, migrated and seeded, and a real `manage.py qcluster` on them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
os.environ["DATABASE_NAME"] = "bench_runs"
os.environ["WAREHOUSE_DB_NAME"] = "bench_runs_warehouse"
os.environ["RUNS_DIR"] = tempfile.mkdtemp(prefix="bench-runs-")


def setup(*, seed: bool = True) -> dict[str, str]:
    """Fresh databases, migrated (and seeded); returns dbt's environment for shell runs."""
    import django
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from transformation_portal.bootstrap import bootstrap

    bootstrap()
    django.setup()
    from django.conf import settings
    from django.db import connection

    connection.close()
    params = conninfo_to_dict(settings.WAREHOUSE_CONNINFO)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        for name in ("bench_runs", "bench_runs_warehouse"):
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, check=True)
    from dbtlib.environment import dbt_environment

    env = dbt_environment(os.environ, settings.DBT_ENV)
    if seed:
        shell_dbt("seed", env)
    return env


def shell_dbt(command: str, env: dict[str, str]) -> float:
    """A cold `dbt <command>` at a shell on inventory_transforms; returns wall seconds."""
    from django.conf import settings

    from dbtlib.environment import DBT_EXECUTABLE

    project = settings.DBT_PROJECTS_DIR / "inventory_transforms"
    out = Path(tempfile.mkdtemp(prefix="bench-shell-"))
    argv = [DBT_EXECUTABLE, command, "--project-dir", str(project), "--profiles-dir", str(project.parent)]
    argv += ["--target-path", str(out / "target"), "--log-path", str(out / "logs")]
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"shell dbt {command} failed:\n{done.stdout[-2000:]}")
    return elapsed


@contextmanager
def queue_cluster():
    log_path = Path(os.environ["RUNS_DIR"]) / "qcluster.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "running" not in log_path.read_text():
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("qcluster did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(0.2)
        time.sleep(3)  # let each worker's dbt launcher finish importing dbt
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def bench_user():
    from django.contrib.auth.models import User

    user, _ = User.objects.get_or_create(username="bench")
    return user


def wait_final(run, poll: float = 0.01):
    while True:
        run.refresh_from_db()
        if run.is_final:
            return run
        time.sleep(poll)


@contextmanager
def web_server(access_log: Path) -> Iterator[str]:
    """gunicorn with the workers `runportal` starts (WEB_WORKERS, default 2), logging each
    request's own time (%(D)s, microseconds) and status to `access_log`; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", os.environ.get("WEB_WORKERS", "2"),
         "--access-logfile", str(access_log), "--access-logformat", "%(D)s %(s)s %(U)s"],
        cwd=REPO, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/login/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def server_ms(access_log: Path, path_part: str) -> list[float]:
    """Sorted server times (ms) of the logged requests whose path contains `path_part`."""
    lines = [line.split() for line in access_log.read_text().splitlines()]
    return sorted(int(fields[0]) / 1000 for fields in lines if len(fields) == 3 and path_part in fields[2])


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
