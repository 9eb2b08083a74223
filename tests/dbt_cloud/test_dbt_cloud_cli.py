"""dbt-cloud-cli 0.9.1 drives the portal as it drives dbt Cloud (issue 19's proof): `job run
--wait` (exit 0 on success, 1 on failure or when `run cancel` cancels the run), `run list`,
`run get`, `run get-artifact`, `job create` and `job delete`, against a web host serving
HTTPS with a certificate of a test CA and a worker host running the jobs' dbt. Nothing
portal-specific on the CLI's side but its host, account and token.

Real processes whose runs go through the broker to a worker host: CI runs it in its second
pass only (SECOND_PASS_ONLY), like Apache Airflow's suite. The CLI's virtualenv is made once."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest

from dbt_cloud.shapes import project_id
from runs.environments import default_environment
from tests.conftest import wait_until
from tests.dbt_cloud.cloud_clients import DbtCloudCli
from tests.dbt_cloud.conftest import CLIENT_ACCOUNT_ID
from tests.hosts import Api

SECOND_PASS_ONLY = True  # conftest: only with DATABASE_URL set (CI's second pass)

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cli(https_portal, operator) -> DbtCloudCli:
    from accounts.models import ApiToken

    return DbtCloudCli(
        host=f"127.0.0.1:{https_portal.web.port}",
        account_id=CLIENT_ACCOUNT_ID,
        token=ApiToken.issue(operator, "dbt-cloud-cli", 1)[1],
        ca=https_portal.ca,
    )


def create_job(api: Api, name: str, steps: list[str]) -> int:
    body = {"project": "airflow_demo", "name": name, "steps": steps}
    return api.json("POST", "/api/v1/jobs/", body, expect=201)["id"]


def test_job_run_wait_exits_0_on_a_green_run_and_1_on_a_failing_one(cli, portal_api):
    green = create_job(portal_api, "green", ["dbt run --select base"])
    done = cli("job", "run", "--job-id", str(green), "--wait")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = json.loads(done.stdout)["data"]
    assert (run["status"], run["job_definition_id"]) == (10, green)
    assert f"Job {green} run {run['id']}: SUCCESS" in done.stderr
    assert portal_api.json("GET", f"/api/v1/runs/{run['id']}/")["cause"] == "Triggered via API"

    red = create_job(portal_api, "red", ["dbt run --select broken"])
    failed = cli("job", "run", "--job-id", str(red), "--wait")
    exited = time.time()
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "Job run failed with ERROR status. For more information, see https://" in failed.stderr
    run = json.loads(failed.stdout)["data"]
    assert run["status"] == 20
    # Reported as soon as it ends (a broken model fails within seconds): the CLI's next poll,
    # every 5 s, sees status 20.
    started, finished = (datetime.fromisoformat(run[field]).timestamp() for field in ("started_at", "finished_at"))
    assert finished - started < 30 and exited - finished < 5 + 3, failed.stderr


def test_job_run_wait_exits_1_when_run_cancel_cancels_the_run(cli, portal_api, tmp_path):
    job = create_job(portal_api, "slow", ["dbt run --select slow"])  # pg_sleep(120)
    output = tmp_path / "wait.log"
    waiting = cli.start("job", "run", "--job-id", str(job), "--wait", output=output)
    try:
        running = wait_until(
            lambda: re.search(rf"Job {job} run (\d+): RUNNING \.\.\.", output.read_text()),
            lambda: f"the CLI to see the job's run running:\n{output.read_text()[-3000:]}",
            timeout=180,
            interval=0.5,
        )
        run = {"id": int(running.group(1))}
        cancelled = cli.json("run", "cancel", "--run-id", str(run["id"]))["data"]
        assert (cancelled["id"], cancelled["status"], cancelled["status_humanized"]) == (run["id"], 30, "Cancelled")
        waiting.wait(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    printed = output.read_text()
    assert waiting.returncode == 1, printed[-3000:]
    assert f"Job {job} run {run['id']}: CANCELLED ..." in printed
    assert "Job run failed with CANCELLED status. For more information, see https://" in printed
    assert portal_api.json("GET", f"/api/v1/runs/{run['id']}/")["state"] == "cancelled"

    again = cli.json("run", "cancel", "--run-id", str(run["id"]))["data"]  # a finished run, as it is
    assert (again["status"], again["is_complete"], again["finished_at"]) == (30, True, run_finished(portal_api, run))
    green = cli.json("job", "run", "--job-id", str(create_job(portal_api, "done", ["dbt run --select base"])), "--wait")
    done = cli.json("run", "cancel", "--run-id", str(green["data"]["id"]))["data"]
    assert (done["status"], done["is_success"]) == (10, True)


def run_finished(api: Api, run: dict) -> str:
    """The run's finished_at as the dbt Cloud API shows it."""
    return api.json("GET", f"/api/v2/accounts/{CLIENT_ACCOUNT_ID}/runs/{run['id']}/")["data"]["finished_at"]


def test_run_list_get_and_get_artifact(cli, portal_api, tmp_path):
    job = create_job(portal_api, "two", ["dbt run --select base", "dbt run --select beside"])
    run_id = json.loads(cli("job", "run", "--job-id", str(job), "--wait").stdout)["data"]["id"]
    listed = cli.json("run", "list", "--job-id", str(job), "--paginate")
    assert [run["id"] for run in listed["data"]] == [run_id]
    got = cli.json("run", "get", "--run-id", str(run_id), "--include-related", "run_steps")
    assert [step["name"] for step in got["data"]["run_steps"]] == [
        "Clone git repository",
        "Create profile from connection dev",
        "Invoke dbt with `dbt run --select base`",
        "Invoke dbt with `dbt run --select beside`",
    ]
    last = cli("run", "get-artifact", "--run-id", str(run_id), "--path", "run_results.json")
    assert last.returncode == 0, last.stderr[-3000:]
    assert [r["unique_id"] for r in json.loads(last.stdout)["results"]] == ["model.airflow_demo.beside"]
    assert json.loads(last.stdout)["metadata"]["env"]["DBT_CLOUD_RUN_ID"] == str(run_id)
    first = cli("run", "get-artifact", "--run-id", str(run_id), "--path", "run_results.json", "--step", "3")
    assert [r["unique_id"] for r in json.loads(first.stdout)["results"]] == ["model.airflow_demo.base"]


def test_job_create_and_delete(cli, portal_api):
    environment = default_environment("airflow_demo")
    created = cli.json(
        "job", "create", "--project-id", str(project_id("airflow_demo")), "--environment-id", str(environment.pk),
        "--name", "from the cli", "--execute-steps", '["dbt run --select base"]',
    )  # fmt: skip
    job = created["data"]
    assert (job["name"], job["execute_steps"], job["job_type"]) == ("from the cli", ["dbt run --select base"], "other")
    assert portal_api.json("GET", f"/api/v1/jobs/{job['id']}/")["steps"] == ["dbt run --select base"]
    deleted = cli.json("job", "delete", "--job-id", str(job["id"]))
    assert (deleted["data"]["id"], deleted["data"]["state"]) == (job["id"], 2)
    status, _ = portal_api.call("GET", f"/api/v1/jobs/{job['id']}/")
    assert status == 404
