from __future__ import annotations

from django.apps import AppConfig


class DbtCloudConfig(AppConfig):
    """dbt Cloud's Administrative API over the portal's jobs and runs, for orchestrators
    (Apache Airflow's dbt Cloud provider) that already speak it."""

    name = "dbt_cloud"
    default_auto_field = "django.db.models.BigAutoField"
