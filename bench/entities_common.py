"""Shared setup of the entities benches: a throw-away warehouse database with N generated
raw users (and applications), the rules engine's output and, optionally, dbt's fct_users."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "transformation_portal.settings")
BENCH_DB = "test_entities_bench_warehouse"


def bench_warehouse() -> str:
    """A fresh, empty database beside the portal's warehouse."""
    import django

    from transformation_portal.bootstrap import bootstrap

    bootstrap()
    django.setup()
    from django.conf import settings

    params = conninfo_to_dict(settings.WAREHOUSE_CONNINFO)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(BENCH_DB)))
    return make_conninfo(**{**params, "dbname": BENCH_DB})


def load(conninfo: str, users: int, applications: int) -> None:
    from entities.rawdata import load_raw_data

    with psycopg.connect(conninfo) as conn:
        done = load_raw_data(conn, users=users, applications=applications, seed=1)
    print(f"raw data: {done.users:,} users ({done.people:,} people), {done.applications:,} applications", flush=True)


def dbt_build_users(conninfo: str) -> float:
    from django.conf import settings

    from dbtlib.environment import DBT_EXECUTABLE, dbt_environment

    env = dbt_environment(os.environ, {**settings.DBT_ENV, "DBT_DBNAME": BENCH_DB})
    project = REPO / "dbt_projects" / "inventory_transforms"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [DBT_EXECUTABLE, "run", "--select", "+fct_users", "--project-dir", str(project),
             "--profiles-dir", str(project.parent), "--target-path", f"{tmp}/target", "--log-path", f"{tmp}/logs"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - started


def drop(conninfo: str) -> None:
    params = conninfo_to_dict(conninfo)
    with psycopg.connect(make_conninfo(**{**params, "dbname": "postgres"}), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(BENCH_DB)))
