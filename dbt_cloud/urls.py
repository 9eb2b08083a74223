"""/api/v2/ and /api/v3/ as dbt Cloud lays them out. Every path takes its trailing slash or
not (the provider's get_job sends `jobs/{id}` without one); ids are at most 18 digits, so they
fit the database's bigint."""

from __future__ import annotations

from django.urls import re_path

from dbt_cloud import api

ACCOUNT = r"^accounts/(?P<account_id>\d{1,18})/"
ID = r"\d{1,18}"

v2 = [
    re_path(r"^accounts/?$", api.AccountListView.as_view(), name="dbtcloud-account-list"),
    re_path(ACCOUNT + r"?$", api.AccountView.as_view(), name="dbtcloud-account"),
    re_path(ACCOUNT + r"projects/?$", api.ProjectListView.as_view(), name="dbtcloud-v2-project-list"),
    re_path(ACCOUNT + rf"projects/(?P<project_id>{ID})/?$", api.ProjectView.as_view(), name="dbtcloud-v2-project"),
    re_path(
        ACCOUNT + rf"environments/(?P<environment_id>{ID})/?$",
        api.EnvironmentView.as_view(),
        name="dbtcloud-v2-environment",
    ),
    re_path(ACCOUNT + r"jobs/?$", api.JobListView.as_view(), name="dbtcloud-job-list"),
    re_path(ACCOUNT + rf"jobs/(?P<job_id>{ID})/?$", api.JobView.as_view(), name="dbtcloud-job"),
    re_path(
        ACCOUNT + rf"jobs/(?P<job_id>{ID})/artifacts/(?P<path>[^?#]+)$",
        api.JobArtifactView.as_view(),
        name="dbtcloud-job-artifact",
    ),
    re_path(ACCOUNT + rf"jobs/(?P<job_id>{ID})/run/?$", api.JobRunView.as_view(), name="dbtcloud-job-run"),
    re_path(ACCOUNT + rf"jobs/(?P<job_id>{ID})/rerun/?$", api.JobRerunView.as_view(), name="dbtcloud-job-rerun"),
    re_path(ACCOUNT + r"runs/?$", api.RunListView.as_view(), name="dbtcloud-run-list"),
    re_path(ACCOUNT + rf"runs/(?P<run_id>{ID})/?$", api.RunView.as_view(), name="dbtcloud-run"),
    re_path(ACCOUNT + rf"runs/(?P<run_id>{ID})/cancel/?$", api.RunCancelView.as_view(), name="dbtcloud-run-cancel"),
    re_path(
        ACCOUNT + rf"runs/(?P<run_id>{ID})/artifacts/?$",
        api.RunArtifactListView.as_view(),
        name="dbtcloud-run-artifact-list",
    ),
    re_path(
        ACCOUNT + rf"runs/(?P<run_id>{ID})/artifacts/(?P<path>[^?#]+)$",
        api.RunArtifactView.as_view(),
        name="dbtcloud-run-artifact",
    ),
    re_path(r"^[\s\S]*$", api.NotFoundView.as_view(), name="dbtcloud-v2-not-found"),
]

v3 = [
    re_path(r"^accounts/?$", api.AccountListView.as_view(), name="dbtcloud-v3-account-list"),
    re_path(ACCOUNT + r"?$", api.AccountView.as_view(), name="dbtcloud-v3-account"),
    re_path(ACCOUNT + r"environments/?$", api.AccountEnvironmentListView.as_view(), name="dbtcloud-v3-environments"),
    re_path(ACCOUNT + r"jobs/?$", api.JobListView.as_view(), name="dbtcloud-v3-job-list"),
    re_path(ACCOUNT + rf"jobs/(?P<job_id>{ID})/?$", api.JobView.as_view(), name="dbtcloud-v3-job"),
    re_path(
        ACCOUNT + rf"environments/(?P<environment_id>{ID})/?$",
        api.EnvironmentView.as_view(),
        name="dbtcloud-v3-account-environment",
    ),
    re_path(ACCOUNT + r"projects/?$", api.ProjectListView.as_view(), name="dbtcloud-project-list"),
    re_path(ACCOUNT + rf"projects/(?P<project_id>{ID})/?$", api.ProjectView.as_view(), name="dbtcloud-project"),
    re_path(
        ACCOUNT + rf"projects/(?P<project_id>{ID})/environments/?$",
        api.EnvironmentListView.as_view(),
        name="dbtcloud-environment-list",
    ),
    re_path(
        ACCOUNT + rf"projects/(?P<project_id>{ID})/environments/(?P<environment_id>{ID})/?$",
        api.EnvironmentView.as_view(),
        name="dbtcloud-environment",
    ),
    re_path(r"^[\s\S]*$", api.NotFoundView.as_view(), name="dbtcloud-v3-not-found"),
]
