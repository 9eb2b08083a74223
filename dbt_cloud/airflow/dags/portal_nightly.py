"""Nightly: the portal runs the inventory_transforms job (its steps, in one worker) and Airflow
waits for it, then hands the run to a downstream task, as a DAG orchestrating dbt Cloud does.
Nothing portal-specific: the stock dbt Cloud provider against a dbt_cloud connection whose
host is the portal (https, port included: `127.0.0.1:8000`), login its account id (1) and
password an operator's API token."""

from __future__ import annotations

from datetime import datetime

import portal_settings
from airflow.providers.dbt.cloud.operators.dbt import DbtCloudRunJobOperator
from airflow.sdk import DAG, task

with DAG(
    "portal_nightly",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["transformation-portal", "dbt"],
):
    run = DbtCloudRunJobOperator(
        task_id="run_nightly_job",
        dbt_cloud_conn_id=portal_settings.CONN_ID,
        check_interval=portal_settings.CHECK_INTERVAL,
        **portal_settings.job("nightly"),
    )

    @task
    def downstream(portal_run_id: int, ti=None) -> str:
        """Stands for what follows the transformations (a refresh, an export, a notification)."""
        url = ti.xcom_pull(task_ids="run_nightly_job", key="job_run_url")
        print(f"downstream: portal run {portal_run_id} succeeded: {url}")
        return url

    downstream(run.output)
