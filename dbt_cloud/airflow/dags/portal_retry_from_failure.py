"""A job retried from its failure: when the first try's portal run fails, Airflow's retry asks
the portal to rerun it from the point of failure (`POST jobs/{id}/rerun/`, dbt retry's
semantics: only the errored and skipped nodes and what follows), not the whole job again.
The provider does so only on a retry (try 2 onwards) whose job's latest run is an error."""

from __future__ import annotations

from datetime import datetime, timedelta

import portal_settings
from airflow.providers.dbt.cloud.operators.dbt import DbtCloudRunJobOperator
from airflow.sdk import DAG

with DAG(
    "portal_retry_from_failure",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["transformation-portal", "dbt"],
):
    DbtCloudRunJobOperator(
        task_id="run_job",
        dbt_cloud_conn_id=portal_settings.CONN_ID,
        check_interval=portal_settings.CHECK_INTERVAL,
        retry_from_failure=True,
        retries=portal_settings.RETRIES,
        retry_delay=timedelta(seconds=portal_settings.RETRY_DELAY_SECONDS),
        **portal_settings.job("nightly"),
    )
