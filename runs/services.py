"""Run workflows shared by pages, API, schedules, entity refreshes and commands."""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.tasks import async_task

from audit.models import Source
from audit.services import record
from dbtlib.commands import check_command, check_target, check_vars
from dbtlib.environment import dbt_environment
from dbtlib.errors import DbtError, ManifestError
from dbtlib.git import GitError
from dbtlib.manifest import Manifest, cached_manifest
from dbtlib.profiles import profile_name, write_profile
from dbtlib.project import declared_vars, newest_source_mtime, parse_project
from dbtlib.selectors import check_selector
from dbtlib.steps import SELECTION_OPTIONS, selected_by_step
from kernel.errors import ErrorCode, RequestError, dbt_input_refused
from lineage.projects import DbtProject, at_commit, discover_projects, get_project, git_refused, pin
from runs.environments import connection, default_environment, portal_variables, project_default
from runs.kinds import get_kind
from runs.logcontext import run_logging
from runs.models import Environment, Job, Run, RunState, RunStep
from runs.retention import check_free_space, prune_git_cache

logger = logging.getLogger(__name__)


def project_state_dir(state_key: str) -> Path:
    """Where the portal keeps a project's latest manifest.json and partial_parse.msgpack,
    refreshed by every run that produced them; new runs are seeded from here. A git project
    keeps one per commit (DbtProject.state_key)."""
    return settings.RUNS_DIR / "_projects" / state_key


def run_dir(run_id: int) -> Path:
    return settings.RUNS_DIR / str(run_id)


def latest_manifest(found: DbtProject) -> Manifest:
    """The project's latest manifest; parsed again (cold dbt parse, a few seconds) when
    missing or older than the project's files."""
    state_dir = project_state_dir(found.state_key)
    manifest_path = state_dir / "manifest.json"
    if not (manifest_path.is_file() and manifest_path.stat().st_mtime >= newest_source_mtime(found.path)):
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(state_dir / ".parse.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (manifest_path.is_file() and manifest_path.stat().st_mtime >= newest_source_mtime(found.path)):
                env = dbt_environment(os.environ, portal_variables(), DBT_APPLICATION_NAME="portal-validate")
                parse_project(found.path, parse_profile(found), state_dir, env)
    return cached_manifest(manifest_path)


def parse_profile(found: DbtProject) -> Path:
    """A profiles dir for validation's `dbt parse`: the default environment's connection
    (parse does not connect, so no password; nothing is stored)."""
    environment = project_default(found.name)
    profiles_dir = project_state_dir(found.state_key) / "profile"
    write_profile(
        profiles_dir,
        profile=profile_name(found.path),
        target=environment.target_name,
        connection=connection(environment),
        threads=environment.threads,
    )
    return profiles_dir


def _check_selectors(found: DbtProject, selectors: dict[str, str], options: dict[str, Any] | None = None) -> None:
    """A trigger is accepted exactly when what it selects (`select` minus `exclude`, or a
    step's YAML `selector`, with its indirect selection and resource types) holds at least
    one node (the selector engine the select API answers with)."""
    options = {name: value for name, value in (options or {}).items() if name in SELECTION_OPTIONS and value}
    if not any(selectors.values()) and not options:
        return
    try:
        manifest = latest_manifest(found)
    except (DbtError, ManifestError) as exc:
        raise RequestError(
            f"the project does not parse, so selectors cannot be checked: {exc}", field="project"
        ) from None
    select, exclude = selectors.get("select", ""), selectors.get("exclude", "")
    if not selected_by_step(manifest, select, exclude, options):
        excluding = f" once {exclude!r} is excluded" if exclude else ""
        if options.get("selector"):
            what = f"selector {options['selector']!r} of selectors.yml matches no node"
        else:
            what = f"selector {select!r} matches no node" if select else "no node is left"
        typed = (
            " of the resource types asked for" if {"resource_types", "exclude_resource_types"} & set(options) else ""
        )
        raise RequestError(
            f"{what}{typed} in project {found.name}{excluding}", field="select", code=ErrorCode.SELECTS_NOTHING
        )


@dataclass(frozen=True)
class RunRequest:
    """A validated, normalized trigger request."""

    project: str
    kind: str
    command: str
    select: str
    exclude: str
    vars: dict
    full_refresh: bool
    timeout_seconds: int
    params: dict
    target: str
    threads: int | None
    git_sha: str
    git_branch: str

    def fields(self) -> dict[str, Any]:
        return asdict(self)


@dbt_input_refused()
def validate_request(
    *,
    project: str,
    command: str = "",
    select: str = "",
    exclude: str = "",
    vars: dict | None = None,  # noqa: A002 - dbt's own name
    full_refresh: bool = False,
    timeout_seconds: int | None = None,
    kind: str = "dbt",
    params: dict | None = None,
    target: str = "",
    threads: int | None = None,
    job_run: bool = False,
    options: dict[str, Any] | None = None,
    git_sha: str = "",
    git_branch: str = "",
    check_selection: bool = True,
) -> RunRequest:
    """Everything a trigger (or a job step) is checked against; raises RequestError.
    `job_run`: the run's commands are its steps (runs.jobs), checked there; `options`: a
    step's other flags (dbtlib.steps.parse_step), those that select checked with the rest
    unless `check_selection` is off (a CI job's steps select what a pull request changes,
    which may be nothing). A git project's run is pinned here to a commit (`git_sha`, else the head of `git_branch`
    or of its branch), and checked against that commit's files."""
    found = get_project(project) if isinstance(project, str) else None
    if found is None:
        names = ", ".join(p.name for p in discover_projects()) or "none"
        raise RequestError(f"no dbt project {project!r} (known: {names})", field="project")
    for field, value in (("git_sha", git_sha), ("git_branch", git_branch)):
        if not isinstance(value, str) or len(value) > 255:
            raise RequestError(f"{field} must be text of at most 255 characters", field=field)
    git_sha, git_branch = pin(found, git_sha=git_sha, git_branch=git_branch)
    found = checked_out(found, git_sha)
    if timeout_seconds in (None, ""):
        timeout_seconds = min(settings.RUN_DEFAULT_TIMEOUT, settings.RUN_MAX_TIMEOUT)
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int):
        raise RequestError("timeout_seconds must be a whole number of seconds", field="timeout_seconds")
    if not 1 <= timeout_seconds <= settings.RUN_MAX_TIMEOUT:
        raise RequestError(f"timeout_seconds must be between 1 and {settings.RUN_MAX_TIMEOUT}", field="timeout_seconds")
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= 64):
        raise RequestError("threads must be between 1 and 64", field="threads")
    target = check_target(target or "")
    if job_run:
        vars = {}
    elif kind == "dbt":
        command = check_command(command or "")
        select = check_selector("select", select or "")
        exclude = check_selector("exclude", exclude or "")
        vars = check_vars(vars, declared_vars(found.path))
    else:
        if get_kind(kind) is None:
            raise RequestError(f"unknown run kind {kind!r}", field="kind")
        if params is not None and not isinstance(params, dict):
            raise RequestError("params must be an object", field="params")
        vars = vars or {}
    if kind == "dbt" and not job_run and check_selection:
        _check_selectors(found, {"select": select, "exclude": exclude}, options)
    return RunRequest(
        project=found.name,
        kind=kind,
        command=command if kind == "dbt" else (command or ""),
        select=select or "",
        exclude=exclude or "",
        vars=vars,
        full_refresh=bool(full_refresh),
        timeout_seconds=timeout_seconds,
        params=params or {},
        target=target,
        threads=threads,
        git_sha=git_sha,
        git_branch=git_branch,
    )


def checked_out(found: DbtProject, sha: str) -> DbtProject:
    """`found` at `sha` on this host, for the checks; RequestError when that commit cannot be."""
    try:
        checked = at_commit(found, sha)
    except GitError as exc:
        raise git_refused(exc, "git_sha") from None
    if found.git is not None:
        prune_git_cache()
    return checked


def trigger_run(*, actor: Any, source: str, rerun_of: Run | None = None, enqueue: bool = True, **request: Any) -> Run:
    """Validate `request` (the fields `validate_request` takes), then create_run. `source` is
    the door the request came through (web, api, schedule, admin, command)."""
    validated = validate_request(**request)
    return create_run(validated.fields(), actor=actor, source=source, rerun_of=rerun_of, enqueue=enqueue)


def create_run(
    fields: dict[str, Any],
    *,
    actor: Any,
    source: str,
    steps: list[dict[str, Any]] = (),
    rerun_of: Run | None = None,
    retry_of: Run | None = None,
    job: Job | None = None,
    cause: str = "",
    enqueue: bool = True,
) -> Run:
    """Create the Run (and its RunSteps) from validated fields, audit, and enqueue it once the
    transaction commits (`enqueue=False`: the caller executes it itself, as `manage.py dbt`
    does). Without an environment in `fields`, the project's default environment."""
    _check_source(source)
    check_free_space()
    with transaction.atomic():
        run = Run.objects.create(
            **_run_fields(fields, actor=actor, source=source, job=job, cause=cause),
            rerun_of=rerun_of,
            retry_of=retry_of,
            reason="waiting for a queue worker",
        )
        RunStep.objects.bulk_create(RunStep(run=run, index=i, **step) for i, step in enumerate(steps, 1))
        if retry_of:
            action, why = "run.retry", f"rerun from failure of run #{retry_of.pk}"
        elif rerun_of:
            action, why = "run.rerun", f"re-run of run #{rerun_of.pk}"
        else:
            action, why = "run.trigger", ""
        record(actor, action, run, after=run_summary(run), reason=cause or why, source=source)
        if enqueue:
            enqueue_on_commit(run.pk)
    with run_logging(run):
        logger.info("run %s triggered (%s): %s", run.pk, source, run.title)
    return run


def create_ended_run(
    fields: dict[str, Any],
    *,
    state: str,
    reason: str,
    at: datetime,
    actor: Any,
    source: str,
    job: Job | None = None,
    cause: str = "",
) -> Run:
    """A run that ends as it is made, never queued (runs.jobs.run_scheduled: a cron slot
    skipped while the job's previous run is active, a schedule that could not trigger),
    audited as any trigger is: `run.trigger`, with its state and reason in the row's after."""
    _check_source(source)
    with transaction.atomic():
        run = Run.objects.create_ended(
            state=state, reason=reason, at=at, **_run_fields(fields, actor=actor, source=source, job=job, cause=cause)
        )
        after = {**run_summary(run), "state": run.state, "reason": run.reason}
        record(actor, "run.trigger", run, after=after, reason=cause, source=source)
    with run_logging(run):
        logger.info("run %s triggered (%s), ended %s: %s", run.pk, source, run.state, run.reason)
    return run


def _check_source(source: str) -> None:
    if source not in Source.values:
        raise RequestError(f"unknown source {source!r}", field="source")


def _run_fields(fields: dict[str, Any], *, actor: Any, source: str, job: Job | None, cause: str) -> dict[str, Any]:
    """A new Run's fields: `fields`, its environment (the project's default when none is
    named), the door and who came through it."""
    environment: Environment = fields.pop("environment", None) or default_environment(fields["project"])
    return {
        **fields,
        "environment": environment,
        "source": source,
        "job": job,
        "cause": cause,
        "triggered_by": actor if getattr(actor, "is_authenticated", False) else None,
    }


def enqueue(run_id: int) -> None:
    async_task("runs.worker.execute_run", run_id, task_name=f"run-{run_id}", group="runs")


def enqueue_on_commit(run_id: int) -> None:
    """The queue task becomes visible when the run commits. With the ORM broker (same
    database) the queue row is written in the run's own transaction, so a web process dying
    right after the commit cannot leave a queued run without its task; with Redis the task
    is sent just after the commit. The broker is the one django-q2 resolved (Conf), which a
    test may point elsewhere than the settings do."""
    if Conf.ORM:
        enqueue(run_id)
    else:
        transaction.on_commit(lambda: enqueue(run_id))


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "project": run.project,
        "kind": run.kind,
        "command": run.command,
        "select": run.select,
        "exclude": run.exclude,
        "vars": run.vars,
        "full_refresh": run.full_refresh,
        "timeout_seconds": run.timeout_seconds,
        "source": run.source,
        "params": run.params,
        "job": run.job_id,
        "environment": run.environment.name if run.environment_id else None,
        "target": run.target,
        "schema": run.schema,
        "threads": run.threads,
        "steps": [step.name for step in run.steps.all()],
        "cause": run.cause,
        "git_sha": run.git_sha,
        "git_branch": run.git_branch,
    }


STEP_FIELDS = ("name", "command", "select", "exclude", "vars", "full_refresh", "stops_job")


def rerun(run: Run, *, actor: Any, source: str) -> Run:
    """The same run again: same command (or steps), environment, overrides and commit (by its
    SHA alone: a branch has moved on, and an old commit's run must not become the docs)."""
    kind = get_kind(run.kind)
    if kind is not None and kind.rerun is not None:
        return kind.rerun(run, actor=actor, source=source)
    steps = list(run.steps.order_by("index").values(*STEP_FIELDS))
    if steps:
        request = validate_request(
            project=run.project,
            timeout_seconds=min(run.timeout_seconds, settings.RUN_MAX_TIMEOUT),
            target=run.target,
            threads=run.threads,
            job_run=True,
            git_sha=run.git_sha,
        )
        fields = {
            **request.fields(),
            "environment": run.environment,
            "schema": run.schema,
            "pull_request": run.pull_request,
        }
        return create_run(fields, steps=steps, actor=actor, source=source, rerun_of=run, job=run.job, cause=run.cause)
    return trigger_run(
        project=run.project,
        command=run.command,
        select=run.select,
        exclude=run.exclude,
        vars=run.vars,
        full_refresh=run.full_refresh,
        timeout_seconds=min(run.timeout_seconds, settings.RUN_MAX_TIMEOUT),
        kind=run.kind,
        params=run.params,
        target=run.target,
        threads=run.threads,
        git_sha=run.git_sha,
        actor=actor,
        source=source,
        rerun_of=run,
    )


def cancel_run(run: Run, *, actor: Any, source: str) -> Run:
    """A queued run is cancelled at once; a started one gets a cancel request that its
    worker turns into SIGINT (then SIGKILL) within a second."""
    who = actor.get_username() if getattr(actor, "is_authenticated", False) else str(actor or "system")
    now = timezone.now()
    with transaction.atomic():
        if Run.objects.cancel_queued(run.pk, reason=f"cancelled by {who} before it started", at=now):
            action_after = {"state": RunState.CANCELLED}
        elif Run.objects.request_cancel(run.pk, reason=f"cancel requested by {who}", at=now):
            action_after = {"cancel_requested_at": now.isoformat()}
        else:
            run.refresh_from_db()
            if run.cancel_requested_at and not run.is_final:
                return run
            raise RequestError(
                f"run #{run.pk} is already {run.get_state_display().lower()}",
                field="state",
                code=ErrorCode.ALREADY_FINISHED,
            )
        record(
            actor,
            "run.cancel",
            run,
            before={"state": run.state},
            after=action_after,
            source=source,
        )
    run.refresh_from_db()
    return run
