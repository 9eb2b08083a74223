"""A node's history across real runs (dbt in the test process, as in test_jobs.py): the test
project `flaky` has a singular test that fails while the warehouse table flaky_switch.bad
holds a row, so the test flips it between builds."""

from __future__ import annotations

import re

import psycopg
import pytest

from runs.history import count_flips
from runs.models import NodeResult, Run, RunState
from runs.services import trigger_run
from runs.worker import execute_run

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")

TEST_ID = "test.flaky.no_bad_things"
MODEL_ID = "model.flaky.things"


@pytest.fixture
def switch(warehouse_conninfo):
    """flip(failing) makes the next build's test fail (a bad row) or pass (none)."""

    def flip(failing: bool) -> None:
        with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM flaky_switch.bad")
            if failing:
                conn.execute("INSERT INTO flaky_switch.bad VALUES (1)")

    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS flaky_switch; CREATE TABLE IF NOT EXISTS flaky_switch.bad (id int)")
    return flip


def build(operator) -> Run:
    run = trigger_run(project="flaky", command="build", actor=operator, source="api")
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def test_a_test_that_flips_three_times_has_its_history_and_is_flaky(client, operator, viewer, switch):
    runs = []
    for failing in (False, True, False, True):
        switch(failing)
        runs.append(build(operator))
    assert [r.state for r in runs] == [RunState.SUCCESS, RunState.FAILED, RunState.SUCCESS, RunState.FAILED]

    client.force_login(viewer)
    page = client.get(f"/lineage/flaky/nodes/{TEST_ID}/").content.decode()
    cells = re.findall(r'href="/runs/(\d+)/" data-testid="history-cell" data-status="([^"]+)"', page)
    assert cells == [(str(r.pk), s) for r, s in zip(runs, ["pass", "fail", "pass", "fail"], strict=True)]
    assert 'data-testid="flaky"' in page and '<span data-testid="flips">3</span>' in page
    failed = NodeResult.objects.get(run=runs[1], unique_id=TEST_ID)
    assert f"run {runs[1].pk} · fail · {failed.failures} failure" in page  # the cell's tooltip

    api = client.get(f"/api/v1/projects/flaky/nodes/{TEST_ID}/history/").json()
    assert (api["project"], api["unique_id"], api["flips"], api["flaky"]) == ("flaky", TEST_ID, 3, True)
    assert [(r["run"], r["status"]) for r in api["results"]] == [(r.pk, r.node_results.get(unique_id=TEST_ID).status)
                                                                  for r in reversed(runs)]  # fmt: skip
    assert set(api["results"][0]) == {
        "run", "step", "status", "failures", "message", "execution_time", "rows_affected", "started_at", "at"
    }  # fmt: skip
    assert api["results"][0]["failures"] == 1 and api["results"][1]["failures"] == 0

    # The model: a duration per run, in a table beside its chart, equal to what was stored.
    model_page = client.get(f"/lineage/flaky/nodes/{MODEL_ID}/").content.decode()
    assert 'data-testid="flaky"' not in model_page and 'data-testid="line-chart"' in model_page
    shown = re.findall(r'<td data-testid="duration">([\d.]+)</td>', model_page)
    stored = NodeResult.objects.filter(unique_id=MODEL_ID).order_by("-run_id").values_list("execution_time", flat=True)
    assert shown == [f"{t:.2f}" for t in stored] and len(shown) == 4

    project_page = client.get("/lineage/flaky/").content.decode()
    slowest = project_page[project_page.index('data-testid="slowest-models"') :]
    mean = sum(stored) / len(stored)
    assert f'>things</a></td><td data-testid="mean">{mean:.2f}</td>' in slowest


def test_two_flips_in_the_last_ten_are_not_flaky_and_skips_do_not_count():
    assert count_flips(["pass", "fail", "fail", "pass"] + ["pass"] * 6) == 2
    assert count_flips(["pass", "skipped", "pass", "warn", "pass", "error"]) == 3
    assert count_flips(["fail"] * 10) == 0


def test_history_api_needs_read_and_a_known_project(api_client, nobody, viewer):
    url = f"/api/v1/projects/flaky/nodes/{TEST_ID}/history/"
    api_client.force_authenticate(nobody)
    assert api_client.get(url).status_code == 403
    api_client.force_authenticate(viewer)
    assert api_client.get(url).json() == {
        "project": "flaky", "unique_id": TEST_ID, "flips": 0, "flaky": False, "results": []
    }  # fmt: skip
    assert api_client.get(f"/api/v1/projects/nope/nodes/{TEST_ID}/history/").status_code == 404


def test_history_api_is_in_the_openapi_schema(api_client, viewer):
    api_client.force_authenticate(viewer)
    paths = api_client.get("/api/v1/schema/", {"format": "json"}).json()["paths"]
    history = paths["/api/v1/projects/{project}/nodes/{unique_id}/history/"]["get"]["responses"]
    assert {"200", "403", "404"} <= set(history)
    assert history["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NodeHistory"}
