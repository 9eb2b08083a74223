from __future__ import annotations

import subprocess
import time

import pytest

from runs.dbt.environment import DBT_EXECUTABLE


@pytest.fixture(scope="session")
def seeded_warehouse(dbt_projects_dir, warehouse_env, tmp_path_factory):
    """The session warehouse with inventory_transforms' seeds loaded (a build needs them)."""
    project = dbt_projects_dir / "inventory_transforms"
    out = tmp_path_factory.mktemp("seed")
    argv = [
        DBT_EXECUTABLE,
        "seed",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(dbt_projects_dir),
        "--target-path",
        str(out / "target"),
        "--log-path",
        str(out / "logs"),
    ]
    done = subprocess.run(argv, env=warehouse_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    return dbt_projects_dir


@pytest.fixture
def runs_cluster(seeded_warehouse, queue_cluster):
    return queue_cluster


def wait_for(run, predicate, timeout: float = 120):
    """Poll the run from the database until predicate(run) holds; returns the run."""
    deadline = time.monotonic() + timeout
    while True:
        run.refresh_from_db()
        if predicate(run):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run #{run.pk} stuck in {run.state} ({run.reason})")
        time.sleep(0.1)


def wait_final(run, timeout: float = 120):
    return wait_for(run, lambda r: r.is_final, timeout)
