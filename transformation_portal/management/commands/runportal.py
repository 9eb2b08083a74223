from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from runs.registry import name_taken
from transformation_portal import embedded_postgres
from transformation_portal.logformat import gunicorn_logging_config

DEMO_PROJECT = "inventory_transforms"


class Command(BaseCommand):
    help = (
        "Start the portal: migrate, (development) demo users and demo warehouse data, then "
        "the web server and a queue worker cluster. Ctrl-C stops everything, including the "
        "embedded PostgreSQL server. On many hosts: --web-only (migrates, serves, no worker) "
        "and --worker-only (waits for a migrated database, then a queue cluster, no web). "
        "TLS_CERT_FILE and TLS_KEY_FILE set: the web server speaks HTTPS."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.WEB_HOST)
        parser.add_argument("--port", type=int, default=settings.WEB_PORT)
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
        parser.add_argument("--web-only", action="store_true", help="the web server without a queue worker")
        parser.add_argument("--worker-only", action="store_true", help="a queue worker cluster without web server")
        parser.add_argument(
            "--wait-for-migrations",
            type=int,
            default=300,
            metavar="SECONDS",
            help="--worker-only: how long to wait for the web side to migrate the database (default 300)",
        )

    def handle(
        self, *args, host: str, port: int, web_workers: int, web_only: bool, worker_only: bool, **options
    ) -> None:
        if web_only and worker_only:
            raise CommandError("--web-only and --worker-only exclude each other; give neither to run both")
        python = sys.executable
        worker = [python, str(settings.BASE_DIR / "manage.py"), "qcluster"]
        if worker_only:
            self._wait_for_migrations(options["wait_for_migrations"])
            self._refuse_a_taken_worker_name()
            self._supervise({"worker": subprocess.Popen(worker)}, f"Queue worker {settings.PORTAL_WORKER_NAME} is up.")
            return
        call_command("migrate", interactive=False, verbosity=0)
        if settings.PRODUCTION:
            self._collect_static()
        elif not settings.EMBEDDED_POSTGRES:
            self.stdout.write("DATABASE_URL is set: no demo users or demo data (embedded database only).")
        else:
            self.stdout.write("Demo logins (development only):")
            call_command("create_demo_users")
            self._seed_demo_warehouse()

        gunicorn = [python, "-m", "gunicorn", "transformation_portal.wsgi", "--bind", f"{host}:{port}"]
        gunicorn += ["--workers", str(web_workers), "--access-logfile", "-", "--graceful-timeout", "10"]
        scheme = "http"
        if settings.TLS_PAIR:  # gunicorn serves HTTPS itself (validated in settings)
            gunicorn += ["--certfile", settings.TLS_PAIR[0], "--keyfile", settings.TLS_PAIR[1]]
            scheme = "https"
        scratch = Path(tempfile.mkdtemp(prefix="portal-web-"))  # this start's own files, removed at the end
        if settings.LOG_FORMAT == "json":
            (scratch / "logging.json").write_text(json.dumps(gunicorn_logging_config()))
            gunicorn += ["--log-config-json", str(scratch / "logging.json")]
        # Both sides derive PORTAL_BASE_URL (unless set) from where the web side really listens.
        served = {**os.environ, "HOST": host, "PORT": str(port)}
        web_env = {**served, "PROMETHEUS_MULTIPROC_DIR": self._metrics_dir(scratch)}
        if not web_only:
            self._refuse_a_taken_worker_name()
        try:
            children = {"web": subprocess.Popen(gunicorn, env=web_env)}
            if not web_only:
                children["worker"] = subprocess.Popen(worker, env=served)
            self._supervise(children, f"\nTransformation Portal is up: {scheme}://{host}:{port}/")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _collect_static(self) -> None:
        """Collect the static files when this process may write STATIC_ROOT (a start from a
        checkout). The image collects them at build, root's: its user cannot write them, and
        a start leaves them as built."""
        root = Path(settings.STATIC_ROOT)
        if os.access(root if root.exists() else root.parent, os.W_OK):
            call_command("collectstatic", interactive=False, verbosity=0)

    def _metrics_dir(self, scratch: Path) -> str:
        """Where the gunicorn workers keep their request figures for /metrics (prometheus-client's
        multiprocess mode: a scrape of any worker sums them all). It must start empty: PROMETHEUS_MULTIPROC_DIR
        emptied of its figures when set, else a directory of this start's own."""
        given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if not given:
            (scratch / "metrics").mkdir()
            return str(scratch / "metrics")
        Path(given).mkdir(parents=True, exist_ok=True)
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return given

    def _supervise(self, children: dict[str, subprocess.Popen], up: str) -> None:
        """Until Ctrl-C or SIGTERM, or one child exits (then all stop, exit code 1). Only the
        plain command (web and worker) stops the embedded database: with --web-only or
        --worker-only another portal process may still use it."""
        owns_database = set(children) == {"web", "worker"}
        self.stdout.write(self.style.SUCCESS(up))
        self.stdout.write(
            f"Press Ctrl-C to stop ({', '.join(children)}{' and the embedded database' if owns_database else ''}).\n"
        )
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with code {child.returncode}; stopping the portal")
                    exit_code, stopping = 1, True
            time.sleep(0.5)
        self._shutdown(children, stop_database=owns_database)
        sys.exit(exit_code)

    def _wait_for_migrations(self, seconds: int) -> None:
        """A worker host never migrates (the web side does, once): it waits until every
        migration is applied, or refuses after `seconds`, naming what to run."""
        deadline = time.monotonic() + seconds
        said = False
        while True:
            try:
                executor = MigrationExecutor(connection)  # as `migrate --check` asks
                pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
                problem = f"{len(pending)} migration(s) not applied yet"
            except DatabaseError as exc:
                pending, problem = None, f"the database does not answer ({exc})"
            finally:
                connection.close()
            if pending == []:
                return
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"--worker-only: {problem}; start the web side first (manage.py runportal --web-only, "
                    "which migrates) or run manage.py migrate"
                )
            if not said:
                self.stdout.write(f"--worker-only: {problem}; waiting up to {seconds} s for the web side to migrate…")
                said = True
            time.sleep(2)

    def _refuse_a_taken_worker_name(self) -> None:
        """Two clusters under one PORTAL_WORKER_NAME would each take the other's runs for its
        own: the second refuses to start while the first beats (runs.registry.name_taken)."""
        try:
            taken = name_taken()
        finally:
            connection.close()
        if taken:
            raise CommandError(taken)

    def _shutdown(self, children: dict[str, subprocess.Popen], stop_database: bool) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if settings.EMBEDDED_POSTGRES and stop_database:
            from django.db import connections

            connections.close_all()
            embedded_postgres.stop(settings.EMBEDDED_PGDATA)
            self.stdout.write("Embedded PostgreSQL stopped.")

    def _seed_demo_warehouse(self) -> None:
        """Load the demo project's seeds into an empty warehouse (first start only)."""
        with psycopg.connect(settings.WAREHOUSE_CONNINFO) as conn:
            [(loaded,)] = conn.execute("SELECT to_regclass('raw.users') IS NOT NULL").fetchall()
        if loaded:
            return
        self.stdout.write(f"Loading demo data into the warehouse (dbt seed of {DEMO_PROJECT})…")
        result = subprocess.run(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "dbt", DEMO_PROJECT, "seed"],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            self.stderr.write(f"dbt seed failed; the portal starts without demo data:\n{result.stdout[-3000:]}")
