"""Entities fixtures: the session warehouse seeded and built by the real dbt once, the rules
engine re-run before each test, and the two entity types (transactional tests empty tables)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO / "dbt_projects"
PROJECT_DIR = PROFILES_DIR / "inventory_transforms"
DBT = str(Path(sys.executable).with_name("dbt"))


def dbt(args: list[str], env: dict[str, str], tmp: Path) -> None:
    result = subprocess.run(
        [DBT, *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROFILES_DIR),
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.fixture(scope="session")
def built_warehouse(warehouse_conninfo, warehouse_env, tmp_path_factory) -> str:
    """Demo seeds in raw.*, and core.fct_users / core.fct_applications built by dbt."""
    tmp = tmp_path_factory.mktemp("dbt")
    dbt(["seed"], warehouse_env, tmp)
    dbt(["build", "--exclude", "resource_type:seed"], warehouse_env, tmp)
    return warehouse_conninfo


@pytest.fixture
def warehouse(built_warehouse) -> str:
    """The session warehouse with fresh rules_engine.* output and no serving views."""
    from entities.rules import engine

    engine.run(built_warehouse, "applications")
    with psycopg.connect(built_warehouse) as conn:
        conn.execute("drop schema if exists serving cascade")
        conn.execute("drop schema if exists router cascade")
    return built_warehouse


def query(conninfo: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(statement, params).fetchall()


@pytest.fixture
def entity_types(db):
    """users and applications as the data migration creates them."""
    from entities.models import EntityType

    migration = importlib.import_module("entities.migrations.0002_users_and_applications")
    for fields in migration.ENTITY_TYPES:
        EntityType.objects.get_or_create(name=fields["name"], defaults=fields)
    return {e.name: e for e in EntityType.objects.all()}


@pytest.fixture
def users_entity(entity_types):
    return entity_types["users"]


@pytest.fixture
def scratch_warehouse(warehouse_conninfo) -> Iterator[str]:
    """An empty database beside the session warehouse, dropped afterwards."""
    params = conninfo_to_dict(warehouse_conninfo)
    name = f"{params['dbname']}_x_{uuid.uuid4().hex[:8]}"
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(**{**params, "dbname": name})
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
