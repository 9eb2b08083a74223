"""A real `dbt parse` of inventory_transforms, once per session, for the lineage tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

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
