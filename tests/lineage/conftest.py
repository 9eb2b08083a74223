"""A real `dbt parse` of inventory_transforms, once per session, for the lineage tests."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dbtlib.environment import DBT_EXECUTABLE

PROJECT = "inventory_transforms"
# A test-only project with dbt's other objects: groups, contracts, versions, semantic models,
# metrics, saved queries and exposures (parsed, never built).
SHOP = "shop"
SHOP_DIR = Path(__file__).resolve().parent / "fixtures" / SHOP


def run_dbt(
    env: dict[str, str], target: Path, *args: str, project_dir: Path | None = None
) -> subprocess.CompletedProcess:
    project_dir = project_dir or settings.DBT_PROJECTS_DIR / PROJECT
    argv = [
        DBT_EXECUTABLE, "--no-use-colors", *args,
        "--project-dir", str(project_dir), "--profiles-dir", str(settings.DBT_PROJECTS_DIR),
        "--target-path", str(target), "--log-path", str(target / "logs"),
    ]  # fmt: skip
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=project_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="session")
def parsed_target(tmp_path_factory, warehouse_env) -> Path:
    """The target directory of a real `dbt parse` (manifest.json inside)."""
    target = tmp_path_factory.mktemp("dbt-parse")
    run_dbt(warehouse_env, target, "parse")
    return target


@pytest.fixture(scope="session")
def manifest_path(parsed_target) -> Path:
    return parsed_target / "manifest.json"


@pytest.fixture(scope="session")
def manifest_json(manifest_path) -> dict:
    return json.loads(manifest_path.read_text())


@pytest.fixture(scope="session")
def shop_manifest_path(tmp_path_factory, warehouse_env) -> Path:
    """manifest.json of a real `dbt parse` of the shop project."""
    target = tmp_path_factory.mktemp("dbt-parse-shop")
    run_dbt(warehouse_env, target, "parse", project_dir=SHOP_DIR)
    return target / "manifest.json"


@pytest.fixture(scope="session")
def shop_manifest_json(shop_manifest_path) -> dict:
    return json.loads(shop_manifest_path.read_text())


@pytest.fixture
def shop_snapshot(db, shop_manifest_path):
    from lineage.services import ingest_manifest

    return ingest_manifest(SHOP, shop_manifest_path, run_id=None, actor="tests")


@pytest.fixture
def snapshot(db, manifest_path):
    from lineage.services import ingest_manifest

    return ingest_manifest(PROJECT, manifest_path, run_id=None, actor="tests")


# A jaffle_shop-shaped project (tests/lineage/test_columns.py): seeded, run and documented.
JAFFLE = "jaffle"
JAFFLE_DIR = Path(__file__).resolve().parent / "fixtures" / JAFFLE


@contextmanager
def _scratch_warehouse(warehouse_conninfo: str, warehouse_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A warehouse database of its own (dropped afterwards): the env for dbt pointed at it."""
    params = conninfo_to_dict(warehouse_conninfo)
    name = f"{params['dbname']}_cols_{uuid.uuid4().hex[:8]}"
    assert name.startswith("test_")
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {**warehouse_env, "DBT_DBNAME": name}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _documented(tmp_path_factory, warehouse_conninfo, warehouse_env, project_dir: Path, **env: str) -> Path:
    """The target directory of a real `dbt seed`, `dbt run` and `dbt docs generate` of a
    project in a scratch warehouse: manifest.json with compiled SQL, catalog.json."""
    target = tmp_path_factory.mktemp(f"dbt-docs-{project_dir.name}")
    with _scratch_warehouse(warehouse_conninfo, warehouse_env) as scratch:
        for command in ("seed", "run", "docs generate"):
            run_dbt({**scratch, **env}, target, *command.split(), project_dir=project_dir)
    return target


@pytest.fixture(scope="session")
def jaffle_target(tmp_path_factory, warehouse_conninfo, warehouse_env) -> Path:
    return _documented(tmp_path_factory, warehouse_conninfo, warehouse_env, JAFFLE_DIR)


@pytest.fixture(scope="session")
def demo_target(tmp_path_factory, warehouse_conninfo, warehouse_env) -> Path:
    """inventory_transforms documented, its seeds loaded as the raw.* its sources read."""
    project_dir = settings.DBT_PROJECTS_DIR / PROJECT
    return _documented(tmp_path_factory, warehouse_conninfo, warehouse_env, project_dir, DBT_SEED_SCHEMA="raw")


HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_MODEL = f"model.{JAFFLE}.hostile"


def hostile_jaffle(jaffle_target: Path, tmp_path: Path) -> Path:
    """The jaffle manifest with a model whose name, description, column names and SQL hold
    script and HTML: it reads stg_payments, so its columns also show on stg_payments' page."""
    manifest = json.loads((jaffle_target / "manifest.json").read_text())
    payments = manifest["nodes"][f"model.{JAFFLE}.stg_payments"]
    hostile = json.loads(json.dumps(payments))
    quoted = '"' + HOSTILE.replace('"', '""') + '"'
    hostile.update(
        unique_id=HOSTILE_MODEL,
        name=HOSTILE,
        alias="hostile",
        description=HOSTILE,
        relation_name=payments["relation_name"].rsplit(".", 1)[0] + '."hostile"',
        raw_code=HOSTILE,
        compiled_code=f"select amount as {quoted}, {HOSTILE!r} as note -- {HOSTILE}\nfrom {payments['relation_name']}",
        columns={HOSTILE: {"name": HOSTILE, "description": HOSTILE, "data_type": HOSTILE, "meta": {}, "tags": []}},
        depends_on={"macros": [], "nodes": [f"model.{JAFFLE}.stg_payments"]},
    )
    manifest["nodes"][HOSTILE_MODEL] = hostile
    path = tmp_path / "hostile-manifest.json"
    path.write_text(json.dumps(manifest))
    return path
