from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from transformation_portal import embedded_postgres

DEMO_PROJECT = "inventory_transforms"


class Command(BaseCommand):
    help = (
        "Start the portal: migrate, (development) demo users and demo warehouse data, then "
        "the web server and a queue worker cluster. Ctrl-C stops everything, including the "
        "embedded PostgreSQL server."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))

    def handle(self, *args, host: str, port: int, web_workers: int, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if settings.PRODUCTION:
            call_command("collectstatic", interactive=False, verbosity=0)
        elif not settings.EMBEDDED_POSTGRES:
            self.stdout.write("DATABASE_URL is set: no demo users or demo data (embedded database only).")
        else:
            self.stdout.write("Demo logins (development only):")
            call_command("create_demo_users")
            self._seed_demo_warehouse()

        python = sys.executable
        children = {
            "web": subprocess.Popen(
                [
                    python,
                    "-m",
                    "gunicorn",
                    "transformation_portal.wsgi",
                    "--bind",
                    f"{host}:{port}",
                    "--workers",
                    str(web_workers),
                    "--access-logfile",
                    "-",
                    "--graceful-timeout",
                    "10",
                ]  # fmt: skip
            ),
            "worker": subprocess.Popen([python, str(settings.BASE_DIR / "manage.py"), "qcluster"]),
        }
        self.stdout.write(self.style.SUCCESS(f"\nTransformation Portal is up: http://{host}:{port}/"))
        self.stdout.write("Press Ctrl-C to stop (web, worker and the embedded database).\n")

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
        self._shutdown(children)
        sys.exit(exit_code)

    def _shutdown(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if settings.EMBEDDED_POSTGRES:
            from django.db import connections

            connections.close_all()
            embedded_postgres.stop(settings.EMBEDDED_PGDATA)
            self.stdout.write("Embedded PostgreSQL stopped.")

    def _seed_demo_warehouse(self) -> None:
        """Load the demo project's seeds into an empty warehouse (first start only)."""
        with psycopg.connect(settings.WAREHOUSE_CONNINFO) as conn:
            loaded = conn.execute("SELECT to_regclass('raw.users') IS NOT NULL").fetchone()[0]
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
