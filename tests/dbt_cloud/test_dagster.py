"""dagster-dbt 0.29.27's dbt Cloud workspace (cloud_v2) drives the portal as it drives dbt
Cloud (issue 19's proof): loading the workspace finds or creates its ad hoc job and parses
the project through it (manifest.json of the run), materializing assets triggers that job with
the selection as steps_override and reads run_results.json (its metadata.env names the run),
and a failing model fails the materialization. Over HTTPS, a certificate of a test CA.

Real processes whose runs go through the broker to a worker host: CI's second pass only
(SECOND_PASS_ONLY). dagster-dbt's virtualenv is made once."""

from __future__ import annotations

import pytest

from dbt_cloud.shapes import project_id
from runs.environments import default_environment
from runs.models import Job
from tests.dbt_cloud.cloud_clients import Dagster
from tests.dbt_cloud.conftest import CLIENT_ACCOUNT_ID

SECOND_PASS_ONLY = True  # conftest: only with DATABASE_URL set (CI's second pass)

pytestmark = [pytest.mark.django_db(transaction=True)]
PROJECT = project_id("airflow_demo")


@pytest.fixture
def dagster(https_portal, operator, tmp_path) -> Dagster:
    from accounts.models import ApiToken

    return Dagster(
        url=https_portal.web.url,
        account_id=CLIENT_ACCOUNT_ID,
        token=ApiToken.issue(operator, "dagster", 1)[1],
        ca=https_portal.ca,
        home=tmp_path / "dagster-home",
    )


def test_the_workspace_loads_creates_its_ad_hoc_job_and_materializes_assets(dagster, portal_api):
    environment = default_environment("airflow_demo")
    workspace, result, output = dagster.materialize(
        project_id=PROJECT, environment_id=environment.pk, select="airflow_demo/base airflow_demo/beside"
    )
    [job] = Job.objects.filter(project="airflow_demo")
    assert workspace["jobs"] == [job.pk] and job.name == f"DAGSTER_ADHOC_JOB__{PROJECT}__{environment.pk}"
    assert "model.airflow_demo.base" in workspace["nodes"]
    sensor = result.pop("sensor")
    assert result == {"success": True, "materialized": ["airflow_demo/base", "airflow_demo/beside"]}, output[-6000:]
    runs = sorted(portal_api.json("GET", f"/api/v1/runs/?job={job.pk}")["results"], key=lambda r: r["id"])
    assert sensor == {"runs": [run["id"] for run in runs], "total": len(runs)}  # ordered by finished_at
    *parses, build = runs
    assert parses and all([step["name"] for step in run["steps"]] == ["dbt parse"] for run in parses)
    assert build["state"] == "success" and build["cause"] == "Triggered by dagster."
    assert build["steps"][0]["name"].startswith("dbt build --select"), build["steps"]


def test_a_failing_model_fails_the_materialization(dagster, portal_api):
    environment = default_environment("airflow_demo")
    _, result, output = dagster.materialize(
        project_id=PROJECT, environment_id=environment.pk, select="airflow_demo/broken"
    )
    result.pop("sensor")
    assert result == {"success": False, "materialized": []}, output[-6000:]
    [job] = Job.objects.filter(project="airflow_demo")  # the ad hoc job, created once
    runs = portal_api.json("GET", f"/api/v1/runs/?job={job.pk}")["results"]
    [failed] = [run for run in runs if run["state"] != "success"]  # the parses succeeded
    assert failed["state"] == "failed" and "broken" in failed["steps"][0]["name"], failed
    assert f"Job run {failed['id']}" in output or "broken" in output
