"""A node's history across real runs (dbt in the test process, as in test_jobs.py): the test
project `flaky` has a singular test that fails while the warehouse table flaky_switch.bad
holds a row, so the test flips it between builds."""

from __future__ import annotations

import re

import psycopg
import pytest

from runs.history import count_flips
from runs.jobs import create_job, trigger_job
from runs.models import NodeResult, Run, RunState
from runs.services import trigger_run
from runs.worker import execute_run

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")

TEST_ID = "test.flaky.no_bad_things"
MODEL_ID = "model.flaky.things"
WARN_TEST_ID = "test.warns.no_numbers"
NUMBERS_ID = "model.warns.numbers"


@pytest.fixture
def switch(warehouse_conninfo):
    """flip(bad_rows) makes the next build's test fail with that many failing rows (or pass: 0)."""

    def flip(bad_rows: int) -> None:
        with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM flaky_switch.bad")
            conn.execute("INSERT INTO flaky_switch.bad SELECT 1 FROM generate_series(1, %s)", [bad_rows])

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
    for bad_rows in (0, 1, 0, 1):
        switch(bad_rows)
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


def test_a_failed_test_shows_its_failing_rows_not_the_one_row_of_its_query(client, operator, viewer, switch):
    """dbt reports a test's query as affecting 1 row; what a user wants is how many rows fail."""
    switch(10)
    run = build(operator)
    assert run.state == RunState.FAILED

    client.force_login(viewer)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    row = page[page.index(">no_bad_things</a>") :]
    row = row[: row.index("</tr>")]
    assert re.findall(r'<td data-testid="rows">([^<]*)</td>', row) == ["10 failing"]
    nodes = {n["unique_id"]: n for n in client.get(f"/api/v1/runs/{run.pk}/nodes/").json()}
    assert (nodes[TEST_ID]["failures"], nodes[TEST_ID]["rows_affected"]) == (10, None)
    assert nodes[MODEL_ID]["rows_affected"] == 1 and nodes[MODEL_ID]["failures"] is None


def test_a_docs_generate_step_is_no_result_of_history(client, operator, viewer):
    """A job that builds, then generates docs: dbt's docs step compiles every node and
    reports each as `success`. Only the builds are history: the test that warns on every
    build stays warn, is not flaky, and the model's durations and slowest-models figures
    count one result per build; the run page still lists what the docs step did."""
    job = create_job(
        actor=operator, source="api", project="warns", name="docs", steps=["dbt build"], generate_docs=True
    )
    runs = []
    for _ in range(2):
        run = trigger_job(job, actor=operator, source="api")
        execute_run(run.pk)
        run.refresh_from_db()
        runs.append(run)
    assert [r.state for r in runs] == [RunState.SUCCESS, RunState.SUCCESS], runs[-1].reason
    assert set(runs[0].node_results.filter(step=2).values_list("unique_id", "status")) == {
        (WARN_TEST_ID, "success"), (NUMBERS_ID, "success")
    }  # fmt: skip

    client.force_login(viewer)
    test_page = client.get(f"/lineage/warns/nodes/{WARN_TEST_ID}/").content.decode()
    latest = re.search(r'data-testid="latest-run">Latest run: <span[^>]*>([^<]+)<', test_page)
    assert latest and latest.group(1) == "warn"
    assert f'<a href="/runs/{runs[-1].pk}/">run {runs[-1].pk}</a>' in test_page
    cells = re.findall(r'href="/runs/(\d+)/" data-testid="history-cell" data-status="([^"]+)"', test_page)
    assert cells == [(str(r.pk), "warn") for r in runs]
    assert 'data-testid="flaky"' not in test_page and '<span data-testid="flips">0</span>' in test_page
    api = client.get(f"/api/v1/projects/warns/nodes/{WARN_TEST_ID}/history/").json()
    assert [(r["run"], r["step"], r["status"]) for r in api["results"]] == [(r.pk, 1, "warn") for r in reversed(runs)]

    model_page = client.get(f"/lineage/warns/nodes/{NUMBERS_ID}/").content.decode()
    built = NodeResult.objects.filter(unique_id=NUMBERS_ID, step=1).order_by("-run_id")
    shown = re.findall(r'<td data-testid="duration">([\d.]+)</td>', model_page)
    assert shown == [f"{r.execution_time:.2f}" for r in built] and len(shown) == 2
    times = [r.execution_time for r in built]
    mean, slowest = f"{sum(times) / 2:.2f}", f"{max(times):.2f}"
    slowest_row = f'>numbers</a></td><td data-testid="mean">{mean}</td><td>{slowest}</td><td>2</td>'
    project_page = client.get("/lineage/warns/").content.decode()
    assert slowest_row in project_page[project_page.index('data-testid="slowest-models"') :]
    dashboard = client.get("/dashboard/").content.decode()
    assert slowest_row.replace("</a></td>", '</a> <span class="muted">warns</span></td>') in dashboard

    run_page = client.get(f"/runs/{runs[0].pk}/").content.decode()
    docs_nodes = run_page[run_page.index('id="step-2-nodes"') :]
    assert "dbt docs generate" in docs_nodes[:200] and ">no_numbers</a>" in docs_nodes


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
