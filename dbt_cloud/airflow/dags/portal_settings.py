"""What the example DAGs read from the environment of the Airflow process that parses them
(scheduler, dag processor, `airflow dags test`), with defaults for the portal's demo. Not a
DAG: the shared settings of the three DAG files next to it.

PORTAL_DBT_CLOUD_CONN_ID   the dbt_cloud connection to the portal (default dbt_cloud_default)
PORTAL_JOB_ID              a job's id; unset, the job is found by the three names below
PORTAL_PROJECT, PORTAL_ENVIRONMENT, PORTAL_JOB
                           project, environment and job names (default inventory_transforms, dev,
                           and the DAG's own default job name)
PORTAL_CHECK_INTERVAL      seconds between status polls (default 30)
PORTAL_RETRIES, PORTAL_RETRY_DELAY
                           the retrying DAG's retries (default 1) and seconds between them (default 60)
PORTAL_OUTPUT_DIR          where downloaded artifacts are written (default $AIRFLOW_HOME/portal-artifacts)
"""

from __future__ import annotations

import os
from typing import Any

CONN_ID = os.environ.get("PORTAL_DBT_CLOUD_CONN_ID", "dbt_cloud_default")
CHECK_INTERVAL = int(os.environ.get("PORTAL_CHECK_INTERVAL", "30"))
RETRIES = int(os.environ.get("PORTAL_RETRIES", "1"))
RETRY_DELAY_SECONDS = int(os.environ.get("PORTAL_RETRY_DELAY", "60"))
OUTPUT_DIR = os.environ.get("PORTAL_OUTPUT_DIR") or os.path.expanduser(
    os.path.join(os.environ.get("AIRFLOW_HOME", "~/airflow"), "portal-artifacts")
)


def job(default_name: str) -> dict[str, Any]:
    """DbtCloudRunJobOperator's arguments naming the job: its id, or project, environment and
    job names (the provider looks the id up through the API then)."""
    if os.environ.get("PORTAL_JOB_ID"):
        return {"job_id": int(os.environ["PORTAL_JOB_ID"])}
    return {
        "project_name": os.environ.get("PORTAL_PROJECT", "inventory_transforms"),
        "environment_name": os.environ.get("PORTAL_ENVIRONMENT", "dev"),
        "job_name": os.environ.get("PORTAL_JOB", default_name),
    }
