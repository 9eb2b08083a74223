"""A real Apache Airflow drives the portal as it drives dbt Cloud (issue 9's proof): the stock
apache-airflow-providers-dbt-cloud operators of dbt_cloud/airflow/dags/, run by
`airflow dags test` against a web host serving HTTPS with a certificate of a test CA, and a
worker host running the jobs' dbt. Nothing portal-specific on the Airflow side but the
connection.

Minutes of real processes (Airflow's own start is seconds per DAG test), and its runs go through
the broker to a worker host: CI runs it in its second pass only (SECOND_PASS_ONLY, with the
machine's PostgreSQL and Redis). The Airflow virtualenv is made once (`make airflow`)."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from tests.conftest import wait_until
from tests.dbt_cloud.airflow_tool import AirflowHome
from tests.dbt_cloud.conftest import https_hosts
from tests.hosts import Api

SECOND_PASS_ONLY = True  # conftest: only with DATABASE_URL set (CI's second pass)
ACCOUNT_ID = 1
PAGE_SIZE = 2  # the v2 API's default page: a handful of runs make several pages
FINAL = {"success", "failed", "error", "cancelled", "timed_out"}

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def portal(django_db_setup, seeded_warehouse, tmp_path_factory):
    with https_hosts(
        tmp_path_factory.mktemp("airflow-portal"),
        "airflow",
        PORTAL_API_PAGE_SIZE=str(PAGE_SIZE),
        PORTAL_ACCOUNT_ID=str(ACCOUNT_ID),
    ) as hosts:
        yield hosts


@pytest.fixture(scope="module")
def airflow_home(portal, tmp_path_factory) -> AirflowHome:
    home = AirflowHome(tmp_path_factory.mktemp("airflow-home"), ca=portal.ca)
    home.migrate()
    return home


@pytest.fixture
def api(portal, operator, monkeypatch) -> Api:
    """The portal's API v1 with an operator's token (this process trusts the test CA)."""
    from accounts.models import ApiToken

    monkeypatch.setenv("SSL_CERT_FILE", str(portal.ca))
    return Api(portal.web.url, ApiToken.issue(operator, "tests", 1)[1])


@pytest.fixture
def airflow(airflow_home, portal, operator) -> AirflowHome:
    """Airflow's dbt_cloud connection to the web host with an operator's token of its own."""
    from accounts.models import ApiToken

    airflow_home.connect(
        host=f"127.0.0.1:{portal.web.port}", account_id=ACCOUNT_ID, token=ApiToken.issue(operator, "airflow", 1)[1]
    )
    return airflow_home


def create_job(api: Api, project: str, name: str, steps: list[str]) -> int:
    """A saved job (API v1), in the project's default environment (`dev`)."""
    return api.json("POST", "/api/v1/jobs/", {"project": project, "name": name, "steps": steps}, expect=201)["id"]


def runs_of(api: Api, job_id: int) -> list[dict]:
    """The job's runs, oldest first."""
    return sorted(api.json("GET", f"/api/v1/runs/?job={job_id}")["results"], key=lambda run: run["id"])


def nodes(api: Api, run_id: int) -> dict[str, str]:
    return {node["name"]: node["status"] for node in api.json("GET", f"/api/v1/runs/{run_id}/nodes/")}


def dags_test(airflow: AirflowHome, dag_id: str, **env: str) -> tuple[str, str]:
    """`airflow dags test` to its end: (the DAG run's final state, the output)."""
    process = airflow.dags_test(dag_id, **env)
    process.wait(timeout=600)
    output = process.log_file.read_text(errors="replace")
    finished = re.findall(r"DagRun Finished: dag_id=\S+, .*?state=(\w+)", output)
    assert finished, f"airflow dags test {dag_id} did not finish a DAG run:\n{output[-5000:]}"
    return finished[-1], output


def cause_of(dag_id: str, task_id: str) -> str:
    """The provider's default cause of a trigger (DbtCloudRunJobOperator.execute)."""
    return f"Triggered via Apache Airflow by task {task_id!r} in the {dag_id} DAG."


def test_a_green_job_by_id_succeeds_and_its_run_carries_airflows_cause(api, airflow):
    job = create_job(api, "inventory_transforms", "nightly", ["dbt run", "dbt test"])
    state, output = dags_test(airflow, "portal_nightly", PORTAL_JOB_ID=str(job))
    assert state == "success", output[-5000:]
    [run] = runs_of(api, job)
    assert (run["state"], run["cause"]) == ("success", cause_of("portal_nightly", "run_nightly_job"))
    assert [step["state"] for step in run["steps"]] == ["success", "success"]
    assert f"downstream: portal run {run['id']} succeeded: {airflow_url(airflow)}/runs/{run['id']}/" in output


def airflow_url(airflow: AirflowHome) -> str:
    return "https://" + json.loads(airflow.env["AIRFLOW_CONN_DBT_CLOUD_DEFAULT"])["host"]


def test_a_deferrable_operator_waits_through_the_providers_trigger(api, airflow):
    """deferrable=True (here Airflow's default_deferrable): the provider's trigger polls the
    run over aiohttp (trusting SSL_CERT_FILE); `dags test` runs the trigger in line."""
    job = create_job(api, "airflow_demo", "base", ["dbt run --select base"])
    state, output = dags_test(
        airflow, "portal_nightly", PORTAL_JOB_ID=str(job), AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True"
    )
    assert state == "success", output[-5000:]
    assert "[DAG TEST] Trigger completed" in output
    assert [run["state"] for run in runs_of(api, job)] == ["success"]


def test_the_same_job_is_found_by_project_environment_and_job_names(api, airflow):
    job = create_job(api, "inventory_transforms", "nightly", ["dbt run --select stg_users"])
    decoy = create_job(api, "inventory_transforms", "nightly full", ["dbt run"])  # name__icontains matches it too
    state, output = dags_test(
        airflow, "portal_nightly", PORTAL_PROJECT="inventory_transforms", PORTAL_ENVIRONMENT="dev", PORTAL_JOB="nightly"
    )
    assert state == "success", output[-5000:]
    assert [run["state"] for run in runs_of(api, job)] == ["success"]
    assert runs_of(api, decoy) == []


def test_a_failing_job_fails_the_task_with_the_providers_exception(api, airflow):
    job = create_job(api, "airflow_demo", "broken", ["dbt run --select broken"])
    state, output = dags_test(airflow, "portal_nightly", PORTAL_JOB_ID=str(job))
    assert state == "failed"
    [run] = runs_of(api, job)
    assert run["state"] == "failed"
    failure = f"DbtCloudJobRunException: Job run {run['id']} reached terminal status ERROR"
    assert failure in output, output[-5000:]
    assert "downstream: portal run" not in output  # the downstream task never ran


def test_a_run_cancelled_in_the_portal_fails_the_waiting_task_as_cancelled(api, airflow):
    job = create_job(api, "airflow_demo", "slow", ["dbt run --select slow"])
    process = airflow.dags_test("portal_nightly", PORTAL_JOB_ID=str(job))
    try:
        run = wait_until(
            lambda: next((r for r in runs_of(api, job) if r["state"] == "running"), None),
            lambda: f"the job's run to start:\n{process.log_file.read_text()[-3000:]}",
            timeout=180,
            interval=0.5,
        )
        api.json("POST", f"/api/v1/runs/{run['id']}/cancel/", expect=202)
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.log_file.read_text(errors="replace")
    assert f"Job run {run['id']} reached terminal status CANCELLED" in output, output[-5000:]
    assert re.search(r"DagRun Finished: .*state=failed", output)
    assert api.json("GET", f"/api/v1/runs/{run['id']}/")["state"] == "cancelled"


def test_the_artifact_operator_writes_the_portals_run_results(api, airflow):
    job = create_job(api, "airflow_demo", "two steps", ["dbt run --select base", "dbt run --select beside"])
    state, output = dags_test(airflow, "portal_run_results", PORTAL_JOB_ID=str(job))
    assert state == "success", output[-5000:]
    [run] = runs_of(api, job)
    written = json.loads((airflow.directory / "artifacts" / f"{run['id']}_run_results.json").read_text())
    assert written == api.json("GET", f"/api/v1/runs/{run['id']}/artifacts/run_results.json")
    assert [result["unique_id"] for result in written["results"]] == ["model.airflow_demo.beside"]  # the last step's


@pytest.fixture
def flaky_from_scratch(warehouse_conninfo):
    """airflow_demo's `flaky` fails on its next build, then succeeds."""
    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS airflow_demo_state CASCADE")


def test_retry_from_failure_reruns_only_the_failed_node_and_what_depends_on_it(api, airflow, flaky_from_scratch):
    job = create_job(api, "airflow_demo", "flaky", ["dbt run --select base flaky after_flaky beside"])
    state, output = dags_test(airflow, "portal_retry_from_failure", PORTAL_JOB_ID=str(job))
    assert state == "success", output[-5000:]
    first, retry = runs_of(api, job)
    assert first["state"] == "failed"
    assert nodes(api, first["id"]) == {
        "base": "success", "beside": "success", "flaky": "error", "after_flaky": "skipped"
    }  # fmt: skip
    assert (retry["state"], retry["retry_of"]) == ("success", first["id"])
    assert nodes(api, retry["id"]) == {"flaky": "success", "after_flaky": "success"}


def test_the_providers_list_job_runs_walks_every_page(api, airflow):
    job = create_job(api, "airflow_demo", "base", ["dbt run --select base"])
    triggered = [api.json("POST", f"/api/v1/jobs/{job}/run/", {}, expect=202)["id"] for _ in range(PAGE_SIZE * 2 + 1)]
    pages = json.loads(
        airflow.python(
            "import json; from airflow.providers.dbt.cloud.hooks.dbt import DbtCloudHook\n"
            f"responses = DbtCloudHook().list_job_runs(job_definition_id={job}, order_by='-id')\n"
            "print(json.dumps([[run['id'] for run in r.json()['data']] for r in responses]))"
        )
        .strip()
        .splitlines()[-1]
    )
    assert pages == [sorted(triggered, reverse=True)[i : i + PAGE_SIZE] for i in range(0, len(triggered), PAGE_SIZE)]
    for run_id in triggered:  # the worker host need not build them all before the module ends
        api.call("POST", f"/api/v1/runs/{run_id}/cancel/")
    wait_until(lambda: all(run["state"] in FINAL for run in runs_of(api, job)), "the runs to end", timeout=300)
