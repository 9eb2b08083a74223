"""Trigger a job without waiting in the operator, wait with the sensor, then download the
run's run_results.json (its last step's) to PORTAL_OUTPUT_DIR/<run id>_run_results.json."""

from __future__ import annotations

from datetime import datetime

import portal_settings
from airflow.providers.dbt.cloud.operators.dbt import DbtCloudGetJobRunArtifactOperator, DbtCloudRunJobOperator
from airflow.providers.dbt.cloud.sensors.dbt import DbtCloudJobRunSensor
from airflow.sdk import DAG

RUN_ID = "{{ ti.xcom_pull(task_ids='trigger_job') }}"

with DAG(
    "portal_run_results",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["transformation-portal", "dbt"],
):
    trigger = DbtCloudRunJobOperator(
        task_id="trigger_job",
        dbt_cloud_conn_id=portal_settings.CONN_ID,
        wait_for_termination=False,
        **portal_settings.job("nightly"),
    )
    wait = DbtCloudJobRunSensor(
        task_id="wait_for_run",
        dbt_cloud_conn_id=portal_settings.CONN_ID,
        run_id=RUN_ID,
        poke_interval=portal_settings.CHECK_INTERVAL,
    )
    fetch = DbtCloudGetJobRunArtifactOperator(
        task_id="fetch_run_results",
        dbt_cloud_conn_id=portal_settings.CONN_ID,
        run_id=RUN_ID,
        path="run_results.json",
        output_file_name=f"{portal_settings.OUTPUT_DIR}/{RUN_ID}_run_results.json",
    )
    trigger >> wait >> fetch
