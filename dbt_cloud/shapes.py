"""Portal objects in dbt Cloud's shapes: a dbt project folder is a project, an Environment an
environment, a Job a job, a Run a run (its RunSteps the run steps).

Project ids: dbt Cloud's are integers, the portal's projects are folders under dbt_projects/
(lineage.projects), named, not numbered. A project's id is the CRC-32 of its folder name
(31 bits, so positive in any client): the same on every host and after every restart, kept
when other folders come or go, with no table to keep in step with the disk. Two folder names
with the same id (about one chance in a million for 50 projects) would be ambiguous: the
lookup then finds neither (`project_by_id`)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.metadata import version
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from lineage.projects import DbtProject, discover_projects
from runs.environments import project_number
from runs.logs import log_lines
from runs.models import Environment, Job, Run, RunState, RunStep, StepState

QUEUED, STARTING, RUNNING, SUCCESS, ERROR, CANCELLED = 1, 2, 3, 10, 20, 30
HUMANIZED = {QUEUED: "Queued", STARTING: "Starting", RUNNING: "Running", SUCCESS: "Success", ERROR: "Error"}
HUMANIZED[CANCELLED] = "Cancelled"
# A skipped cron slot ended without running: nearest to dbt Cloud's cancelled (the reason says why).
RUN_STATUS = {
    RunState.QUEUED: QUEUED,
    RunState.STARTING: STARTING,
    RunState.RUNNING: RUNNING,
    RunState.SUCCESS: SUCCESS,
    RunState.FAILED: ERROR,
    RunState.ERROR: ERROR,
    RunState.TIMED_OUT: ERROR,
    RunState.CANCELLED: CANCELLED,
    RunState.SKIPPED: CANCELLED,
}
STEP_STATUS = {
    StepState.QUEUED: QUEUED,
    StepState.RUNNING: RUNNING,
    StepState.SUCCESS: SUCCESS,
    StepState.FAILED: ERROR,
    StepState.ERROR: ERROR,
    StepState.CANCELLED: CANCELLED,
    StepState.SKIPPED: CANCELLED,
}


def states_of(status: int) -> list[str]:
    """The portal run states a dbt Cloud status code stands for."""
    return [state for state, code in RUN_STATUS.items() if code == status]


def project_id(name: str) -> int:
    return project_number(name)


def project_by_id(pk: int) -> DbtProject | None:
    found = [project for project in discover_projects() if project_id(project.name) == pk]
    return found[0] if len(found) == 1 else None


@cache
def dbt_version() -> str:
    return version("dbt-core")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _clock(seconds: float | None) -> str | None:
    """dbt Cloud's durations: "00:01:05"."""
    if seconds is None:
        return None
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _humanized(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    whole = int(seconds)
    if whole < 60:
        return f"{whole} second{'s' if whole != 1 else ''}"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}, {rest} second{'s' if rest != 1 else ''}"


def _between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def account() -> dict[str, Any]:
    return {"id": settings.PORTAL_ACCOUNT_ID, "name": "Transformation Portal", "state": 1, "plan": "enterprise"}


def project(found: DbtProject) -> dict[str, Any]:
    return {
        "id": project_id(found.name),
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "name": found.name,
        "description": "",
        "dbt_project_subdirectory": None,
        "type": 0,
        "state": 1,
    }


def environment(env: Environment) -> dict[str, Any]:
    return {
        "id": env.pk,
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "project_id": project_id(env.project),
        "name": env.name,
        "type": "deployment",
        "deployment_type": "production" if env.name == "prod" else None,
        "dbt_version": dbt_version(),
        "use_custom_branch": False,
        "custom_branch": None,
        "credentials": {
            "type": "postgres",
            "target_name": env.target_name,
            "schema": env.schema,
            "threads": env.threads,
        },
        "is_default": env.is_default,
        "state": 1,
        "created_at": _time(env.created_at),
        "updated_at": _time(env.created_at),
    }


def job(item: Job) -> dict[str, Any]:
    """`item.environment` selected with it; `next_run` annotated by runs.jobs.with_next_run."""
    next_run = getattr(item, "next_run", None)
    return {
        "id": item.pk,
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "project_id": project_id(item.project),
        "environment_id": item.environment_id,
        "name": item.name,
        "description": item.description,
        "dbt_version": None,
        "job_type": "ci" if item.triggers_on_pull_request else "scheduled" if item.schedule_enabled else "other",
        "execute_steps": list(item.steps),
        "generate_docs": item.generate_docs,
        "run_generate_sources": item.run_source_freshness,
        "settings": {"threads": item.threads or item.environment.threads, "target_name": item.environment.target_name},
        "timeout_seconds": item.timeout_seconds or 0,
        "execution": {"timeout_seconds": item.timeout_seconds or 0},
        "triggers": {
            "schedule": item.schedule_enabled,
            "github_webhook": item.triggers_on_pull_request,
            "git_provider_webhook": item.triggers_on_pull_request,
            "on_merge": False,
        },
        "schedule": {"cron": item.cron or None, "date": {"type": "custom_cron", "cron": item.cron or None}},
        "next_run": _time(next_run),
        "state": 1,
        "deactivated": False,
        "deferring_job_definition_id": None,
        "deferring_environment_id": item.deferring_environment_id,
        "created_at": _time(item.created_at),
        "updated_at": _time(item.updated_at),
    }


def trigger(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "job_definition_id": run.job_id,
        "cause": run.cause,
        "cause_humanized": run.cause,
        "git_branch": run.git_branch or None,
        "git_sha": run.git_sha or None,
        "github_pull_request_id": run.pull_request,
        "schema_override": run.schema or None,
        "target_name_override": run.target or None,
        "threads_override": run.threads,
        "created_at": _time(run.queued_at),
    }


# dbt Cloud's run steps: its setup steps, then one "Invoke dbt with `dbt …`" step per dbt
# command. The portal clones nothing and writes the profile from the run's environment; both
# are shown so step numbers (and `?step=` of the artifacts) count as dbt Cloud's do.
SETUP_STEPS = ("Clone git repository", "Create profile from connection {environment}")
SETUP_LOGS = (
    "{checkout}",
    "profiles.yml written from environment {environment} (target {target}).",
)


def _step(run: Run, step: RunStep, index: int, name: str, debug: bool, logs: str) -> dict[str, Any]:
    status = STEP_STATUS[step.state]
    seconds = _between(step.started_at, step.finished_at or (timezone.now() if step.started_at else None))
    return {
        "id": step.pk,
        "run_id": run.pk,
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "index": index,
        "name": name,
        "status": status,
        "status_humanized": HUMANIZED[status],
        "status_message": None,
        "logs": logs,
        "debug_logs": logs if debug else "",
        "truncated_debug_logs": logs if debug else "",
        "started_at": _time(step.started_at),
        "finished_at": _time(step.finished_at),
        "duration": _clock(seconds),
        "duration_humanized": _humanized(seconds),
    }


def dbt_steps(run: Run) -> list[RunStep]:
    """The run's dbt steps; a run of one command (no RunStep rows) is one step with the whole log."""
    steps = list(run.steps.all())
    if steps:
        return steps
    state = {RunState.QUEUED: StepState.QUEUED, RunState.STARTING: StepState.RUNNING}.get(run.state, run.state)
    if state == RunState.TIMED_OUT:
        state = StepState.FAILED
    whole = RunStep(
        run=run,
        index=1,
        name=f"dbt {run.title}",
        state=state,
        started_at=run.started_at,
        finished_at=run.finished_at,
        log_first_line=0,
        log_end_line=run.log_lines,
    )
    return [whole]


def step_names(run: Run) -> list[str]:
    """Each step's name in dbt Cloud's order (index = position + 1)."""
    environment = run.environment.name if run.environment else "dev"
    setup = [name.format(environment=environment) for name in SETUP_STEPS]
    return setup + [f"Invoke dbt with `{step.name}`" for step in dbt_steps(run)]


def run_steps(run: Run, *, debug: bool = False) -> list[dict[str, Any]]:
    """The setup steps (done when the run started), then its dbt steps; `debug` fills each
    step's debug_logs (include_related=debug_logs) with its log."""
    environment = run.environment.name if run.environment else "dev"
    target = run.target or (run.environment.target_name if run.environment else "dev")
    ran = run.started_at or run.state in (RunState.SUCCESS, RunState.FAILED, RunState.TIMED_OUT)
    state = StepState.SUCCESS if ran else StepState.CANCELLED if run.is_final else StepState.QUEUED
    shown = []
    for position, (name, text) in enumerate(zip(SETUP_STEPS, SETUP_LOGS, strict=True)):
        setup = RunStep(run=run, state=state, started_at=run.started_at, finished_at=run.started_at)
        checkout = (
            f"Checked out commit {run.git_sha} of project {run.project}."
            if run.git_sha
            else f"The portal runs the project folder dbt_projects/{run.project}/ as it is: there is no git repository."
        )
        logs = text.format(checkout=checkout, environment=environment, target=target) if ran else ""
        shown.append(_step(run, setup, position + 1, name.format(environment=environment), debug, logs))
    steps = dbt_steps(run)
    spans: dict[int, tuple[int, int]] = {}  # each logged step's [first, end) lines
    for step in steps:
        if step.log_first_line is not None:
            spans[step.index] = (step.log_first_line, step.log_end_line or run.log_lines)
    first = min((start for start, _ in spans.values()), default=0)
    lines = log_lines(run, first, max(end for _, end in spans.values())) if spans else []  # one query for all
    for step in steps:
        start, end = spans.get(step.index, (first, first))
        logs = "\n".join(lines[start - first : end - first])
        shown.append(_step(run, step, len(SETUP_STEPS) + step.index, f"Invoke dbt with `{step.name}`", debug, logs))
    return shown


def audit(item: Run) -> dict[str, Any]:
    who = item.triggered_by.get_username() if item.triggered_by else ""
    return {"created_at": _time(item.queued_at), "created_by": who or item.source, "source": item.source}


def run(item: Run, related: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`item.job` and `item.environment` selected with it; `related` (include_related) adds
    `job`, `trigger`, `environment`, `run_steps` (with their logs as `debug_logs` when
    `debug_logs` is asked for too), `run_retries`, `audit`; `repository`, `used_repo_cache`
    and `repo_cache_restore` are null (a git project's run names its commit in git_sha)."""
    status = RUN_STATUS[item.state]
    now = timezone.now()
    total = _between(item.queued_at, item.finished_at or now)
    queued = _between(item.queued_at, item.started_at or (None if item.is_final else now))
    running = _between(item.started_at, item.finished_at or (now if item.started_at else None))
    return {
        "id": item.pk,
        "trigger_id": item.pk,
        "account_id": settings.PORTAL_ACCOUNT_ID,
        "project_id": project_id(item.project),
        "environment_id": item.environment_id,
        "job_definition_id": item.job_id,
        "job_id": item.job_id,
        "status": status,
        "status_humanized": HUMANIZED[status],
        "status_message": item.reason if status in (ERROR, CANCELLED) else None,
        "dbt_version": dbt_version(),
        "git_branch": item.git_branch or None,
        "git_sha": item.git_sha or None,
        "href": f"{settings.PORTAL_BASE_URL}{reverse('run-detail', args=[item.pk])}",
        "created_at": _time(item.queued_at),
        "updated_at": _time(item.finished_at or item.heartbeat_at or item.started_at or item.queued_at),
        "dequeued_at": _time(item.started_at),
        "started_at": _time(item.started_at),
        "finished_at": _time(item.finished_at),
        "last_heartbeat_at": _time(item.heartbeat_at),
        "duration": _clock(total),
        "duration_humanized": _humanized(total),
        "queued_duration": _clock(queued),
        "queued_duration_humanized": _humanized(queued),
        "run_duration": _clock(running),
        "run_duration_humanized": _humanized(running),
        "in_progress": status in (QUEUED, STARTING, RUNNING),
        "is_complete": status in (SUCCESS, ERROR, CANCELLED),
        "is_success": status == SUCCESS,
        "is_error": status == ERROR,
        "is_cancelled": status == CANCELLED,
        "is_running": status == RUNNING,
        "retry_of_run_id": item.retry_of_id,
        "trigger": trigger(item) if "trigger" in related else None,
        "job": job(item.job) if "job" in related and item.job_id else None,
        "environment": environment(item.environment) if "environment" in related and item.environment_id else None,
        "run_steps": run_steps(item, debug="debug_logs" in related) if related & {"run_steps", "debug_logs"} else [],
        "run_retries": [run(retry) for retry in item.retries.all()] if "run_retries" in related else [],
        "repository": None,
        "used_repo_cache": None,
        "repo_cache_restore": None,
        "audit": audit(item) if "audit" in related else None,
    }
