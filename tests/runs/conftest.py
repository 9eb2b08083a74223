from __future__ import annotations

import time

import pytest


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
