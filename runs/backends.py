"""A run's warehouse connections: every one carries the run's application_name, so a
cancel, a timeout or the reaper can find and end them (dbt's own, the rules engine's, the
parity query's)."""

from __future__ import annotations

import time

import psycopg
from django.conf import settings


def application_name(run_id: int) -> str:
    """`portal-run-<id>` on the default metadata database: run ids are unique per metadata
    database, so its name tells apart two installations whose warehouses share a server."""
    return f"{settings.DATABASES['default']['NAME'][:40]}-run-{run_id}"


def terminate_backends(run_id: int) -> int:
    """Terminate warehouse backends still carrying the run's application_name."""
    name = application_name(run_id)
    with psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True, connect_timeout=10) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()", [name]
            )
        ]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [name]).fetchone():
                break
            time.sleep(0.1)
    return len(pids)
