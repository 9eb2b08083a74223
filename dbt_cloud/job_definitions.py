"""dbt Cloud's job object (POST jobs/, POST jobs/{id}/) as runs.jobs' fields. Every field of
dbt Cloud's job that the portal has is honoured; those it cannot honour are accepted only with
the value that means "off" (false, null, 0, the default) and refused by name otherwise; the
read-only fields of the job's own shape (so a job read can be sent back) are ignored."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from dbt_cloud import shapes
from kernel.errors import RequestError
from runs.models import Environment, Job

JOB_TYPES = ("scheduled", "other", "ci", "merge", "adaptive", "exposure_sync")
# A job made without execute_steps (dagster's ad hoc job, triggered with steps_override) runs this.
DEFAULT_STEPS = ["dbt build"]
NOT_PR = "the portal's CI jobs run on each pull request's head commit (triggers.git_provider_webhook)"
# Fields that must be off (false/null/0/empty) with why; each as `parent.child` when nested.
OFF: dict[str, str] = {
    "deferring_job_definition_id": "the portal's jobs defer to no other job",
    "run_compare_changes": "the portal has no compare changes",
    "run_lint": "the portal has no SQL linting step",
    "errors_on_lint_failure": "the portal has no SQL linting step",
    "lifecycle_webhooks": "the portal notifies through its notification targets (API v1)",
    "triggers_on_draft_pr": NOT_PR,
    "triggers.on_merge": NOT_PR,
    "triggers.custom_branch_only": NOT_PR,
    "job_completion_trigger_condition": "a job is not triggered by another job's completion",
    "integration_id": "the portal has no integrations",
    "compare_changes_flags": "the portal has no compare changes",
}
READ_ONLY = {
    "id", "account_id", "created_at", "updated_at", "next_run", "deactivated", "dbt_version", "is_deferrable",
    "next_run_humanized", "cron_humanized", "job_type",
}  # fmt: skip
TOP = {
    "project_id", "environment_id", "name", "description", "execute_steps", "generate_docs", "run_generate_sources",
    "triggers", "settings", "execution", "schedule", "state", "timeout_seconds", "deferring_environment_id",
}  # fmt: skip
NESTED = {
    "triggers": {"schedule", "github_webhook", "git_provider_webhook", "on_merge", "custom_branch_only"},
    "settings": {"threads", "target_name"},
    "execution": {"timeout_seconds"},
    "schedule": {"cron", "date", "time"},
}


# runs.jobs' field names as dbt Cloud's job names them, for its refusals.
FIELD_NAMES = {
    "steps": "execute_steps",
    "environment": "environment_id",
    "threads": "settings.threads",
    "timeout_seconds": "execution.timeout_seconds",
    "cron": "schedule.cron",
    "schedule_enabled": "triggers.schedule",
    "run_source_freshness": "run_generate_sources",
    "triggers_on_pull_request": "triggers.git_provider_webhook",
    "deferring_environment": "deferring_environment_id",
}
# The job types the portal has: a CI job, one on a schedule, one run by the API.
CI_TYPE, KNOWN_TYPES = "ci", ("scheduled", "other", "ci")


def as_sent(exc: RequestError) -> RequestError:
    """runs.jobs' refusal naming the field as dbt Cloud's job names it."""
    if exc.field not in FIELD_NAMES:
        return exc
    field = FIELD_NAMES[exc.field]
    message = exc.message.removeprefix(exc.field).lstrip() if exc.message.startswith(exc.field) else exc.message
    text = f"{field} {message}" if exc.message.startswith(exc.field) else message
    return RequestError(text, field=field, code=exc.code)


def check_dbt_version(value: Any, field: str) -> None:
    """A dbt version a body names must be the one the workers run (1.11.2, 1.11, 1.11.x,
    1.11.latest, latest, versionless)."""
    if value is None:
        return
    current = shapes.dbt_version()
    minor = ".".join(current.split(".")[:2])
    accepted = {current, minor, f"{minor}.x", f"{minor}.latest", f"{minor}.0-latest", "latest", "versionless"}
    if not isinstance(value, str) or value.strip().lower() not in accepted:
        raise RequestError(f"{field} must name the dbt the workers run ({current}), not {value!r}", field=field)


def _off(value: Any) -> bool:
    return value in (None, False, 0, "", [], {})


def _check_fields(data: dict[str, Any]) -> None:
    known = TOP | READ_ONLY | {name for name in OFF if "." not in name}
    for name, value in data.items():
        if name not in known:
            raise RequestError(f"unknown field {name!r} of a job", field=name)
        if name in OFF and not _off(value):
            raise RequestError(f"{name} is not supported: {OFF[name]}", field=name)
    for parent, children in NESTED.items():
        value = data.get(parent)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise RequestError(f"{parent} must be an object", field=parent)
        for child, inner in value.items():
            field = f"{parent}.{child}"
            if child not in children:
                raise RequestError(f"unknown field {field!r} of a job", field=field)
            if field in OFF and not _off(inner):
                raise RequestError(f"{field} is not supported: {OFF[field]}", field=field)


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{field} must be a whole number", field=field)
    return value


def job_fields(data: Any, *, job: Job | None = None) -> tuple[str, dict[str, Any]]:
    """(project folder, runs.jobs fields) of a dbt Cloud job body: a new job's when `job` is
    None (project_id required), else the fields sent that change `job`."""
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object", field=None)
    data = {name: value for name, value in data.items() if value is not None}
    _check_fields(data)
    if "id" in data and (job is None or _whole(data["id"], "id") != job.pk):
        raise RequestError("id must be null when creating a job, else the job's own id", field="id")
    if "account_id" in data and data["account_id"] != settings.PORTAL_ACCOUNT_ID:
        raise RequestError(f"account_id must be this account ({settings.PORTAL_ACCOUNT_ID})", field="account_id")
    if "job_type" in data and data["job_type"] not in KNOWN_TYPES:
        raise RequestError(f"job_type {data['job_type']!r} is not supported: {NOT_PR}", field="job_type")
    check_dbt_version(data.get("dbt_version"), "dbt_version")
    if data.get("state", 1) != 1:
        raise RequestError("state must be 1 (active): delete a job with DELETE jobs/{id}/", field="state")
    project = _project(data, job)
    fields: dict[str, Any] = {}
    environment = job.environment if job else None
    if "environment_id" in data:
        pk = _whole(data["environment_id"], "environment_id")
        environment = Environment.objects.filter(pk=pk, project=project).first()
        if environment is None:
            raise RequestError(f"project {project} has no environment {pk}", field="environment_id")
        fields["environment"] = environment
    for name in ("name", "description", "generate_docs"):
        if name in data:
            fields[name] = data[name]
    if "run_generate_sources" in data:
        fields["run_source_freshness"] = data["run_generate_sources"]
    if "execute_steps" in data:
        fields["steps"] = data["execute_steps"]
    elif job is None:
        fields["steps"] = list(DEFAULT_STEPS)
    settings_ = data.get("settings") or {}
    if "threads" in settings_:
        fields["threads"] = _whole(settings_["threads"], "settings.threads")
    target = settings_.get("target_name")
    if target not in (None, "", "default") and target != (environment.target_name if environment else "dev"):
        raise RequestError(
            "settings.target_name must be the environment's target or 'default': a job runs its environment's "
            "target (target_name_override changes it for one run)",
            field="settings.target_name",
        )
    timeout = (data.get("execution") or {}).get("timeout_seconds", data.get("timeout_seconds"))
    if timeout is not None:
        fields["timeout_seconds"] = _whole(timeout, "execution.timeout_seconds") or None
    triggers = data.get("triggers") or {}
    if "schedule" in triggers:
        if not isinstance(triggers["schedule"], bool):
            raise RequestError("triggers.schedule must be true or false", field="triggers.schedule")
        fields["schedule_enabled"] = triggers["schedule"]
    pull_request = [triggers[name] for name in ("github_webhook", "git_provider_webhook") if name in triggers]
    if any(not isinstance(value, bool) for value in pull_request):
        raise RequestError("triggers.git_provider_webhook must be true or false", field="triggers.git_provider_webhook")
    if pull_request or data.get("job_type") == CI_TYPE:
        fields["triggers_on_pull_request"] = any(pull_request) or data.get("job_type") == CI_TYPE
    if "deferring_environment_id" in data:
        fields["deferring_environment"] = _whole(data["deferring_environment_id"], "deferring_environment_id")
    cron = (data.get("schedule") or {}).get("cron")
    if cron is not None:
        fields["cron"] = cron
    if job is None and not fields.get("schedule_enabled"):
        fields.pop("cron", None)  # a client's default schedule of a job it does not schedule
    return project, fields


def _project(data: dict[str, Any], job: Job | None) -> str:
    if "project_id" not in data:
        if job is None:
            raise RequestError("project_id is required", field="project_id")
        return job.project
    found = shapes.project_by_id(_whole(data["project_id"], "project_id"))
    if found is None:
        raise RequestError(f"no project {data['project_id']}", field="project_id")
    if job is not None and found.name != job.project:
        raise RequestError("project_id cannot change: a job stays in its project", field="project_id")
    return found.name
