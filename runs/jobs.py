"""Jobs: saved dbt jobs (ordered steps, environment, timeout, cron trigger, notifications),
their runs (a run with steps, runs/worker.py), rerun from failure and the cron schedules,
each backed by one django-q2 Schedule row."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from croniter import CroniterBadDateError, croniter
from django.conf import settings
from django.db import transaction
from django.db.models import Case, OuterRef, QuerySet, Subquery, When
from django.utils import timezone
from django_q.models import Schedule

from audit.models import Source
from audit.services import changed_fields, record, snapshot
from dbtlib.steps import parse_step, step_text
from kernel.errors import ErrorCode, RequestError, dbt_input_refused
from runs.environments import check_schema, default_environment
from runs.models import FAILED_NODE_STATUSES, Environment, Job, NodeStatus, Run, RunState, StepState
from runs.notifications import delete_target, enqueue_notifications
from runs.services import create_ended_run, create_run, validate_request

# A PostgreSQL schema name as dbt writes it: longer names are cut to 63 bytes by the server,
# so two different overrides could name one schema (and escape the write lock).
SCHEMA = re.compile(r"[A-Za-z0-9_]{1,63}")
logger = logging.getLogger(__name__)

MAX_STEPS = 30
JOB_FIELDS = (
    "name", "description", "environment", "steps", "timeout_seconds", "threads", "generate_docs",
    "run_source_freshness", "cron", "schedule_enabled", "alert_on_warn", "triggers_on_pull_request",
    "deferring_environment",
)  # fmt: skip
FRESHNESS_STEP = "dbt source freshness"
DOCS_STEP = "dbt docs generate"
# What a rerun from failure selects again of the failed step: dbt retry's errored and skipped nodes.
RETRY_STATUSES = frozenset({*FAILED_NODE_STATUSES, NodeStatus.SKIPPED})


def next_fire(cron: str, after: datetime | None = None) -> datetime:
    base = timezone.localtime(after or timezone.now())
    return croniter(cron, base).get_next(datetime)


@dbt_input_refused()
def validate_steps(project: str, steps: Any, *, git_sha: str = "", ci: bool = False) -> list[dict[str, Any]]:
    """Each step parsed (dbtlib/steps.py) and checked as a run is (allowed command,
    selectors against the manifest, declared vars; a git project's at `git_sha`): the RunStep
    fields, in order. A CI job's selectors may select nothing (nothing changed)."""
    if not isinstance(steps, list) or not steps:
        raise RequestError("steps must be a list of one or more dbt command lines", field="steps")
    if len(steps) > MAX_STEPS:
        raise RequestError(f"a job has at most {MAX_STEPS} steps", field="steps")
    checked = []
    for text in steps:
        parts = parse_step(text)
        try:
            request = validate_request(project=project, git_sha=git_sha, check_selection=not ci, **parts)
        except RequestError as exc:
            raise RequestError(f"step {text!r}: {exc.message}", field="steps", code=exc.code) from None
        checked.append(
            {
                "name": " ".join(text.split()),
                "command": request.command,
                "select": request.select,
                "exclude": request.exclude,
                "vars": request.vars,
                "full_refresh": request.full_refresh,
                "options": parts["options"],
                "stops_job": request.command != "source freshness",
            }
        )
    return checked


def _number(fields: dict, name: str, low: int, high: int) -> int | None:
    value = fields.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestError(f"{name} must be a whole number from {low} to {high}", field=name)
    return value


def _flag(fields: dict, name: str) -> bool:
    value = fields.get(name, False)
    if not isinstance(value, bool):
        raise RequestError(f"{name} must be true or false", field=name)
    return value


def _environment(project: str, value: Any, field: str = "environment") -> Environment:
    if value in (None, ""):
        return default_environment(project)
    if isinstance(value, Environment):
        value = value.pk
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{field} must be an environment id", field=field)
    found = Environment.objects.filter(pk=value, project=project).first()
    if found is None:
        raise RequestError(f"project {project} has no environment {value}", field=field)
    return found


def _cron(value: Any) -> str:
    """A cron expression of five fields with a next slot (`0 0 31 2 *` parses but never fires)."""
    cron = " ".join(str(value or "").split())
    if cron and (len(cron.split()) != 5 or not croniter.is_valid(cron)):
        raise RequestError(f"{cron!r} is not a cron expression (minute hour day month weekday)", field="cron")
    if cron:
        try:
            next_fire(cron)
        except CroniterBadDateError:
            raise RequestError(f"{cron!r} never fires (no such date)", field="cron") from None
    return cron


def validate_job(fields: dict[str, Any], *, project: str) -> dict[str, Any]:
    """The clean fields of a job of `project`; RequestError naming the field."""
    pinned = validate_request(project=project, kind="dbt", command="parse")  # the project exists
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise RequestError("a job needs a name of at most 100 characters", field="name")
    description = fields.get("description") or ""
    if not isinstance(description, str) or len(description) > 5000:
        raise RequestError("description must be text of at most 5000 characters", field="description")
    cron = _cron(fields.get("cron"))
    schedule_enabled = _flag(fields, "schedule_enabled")
    if schedule_enabled and not cron:
        raise RequestError("a schedule needs a cron expression", field="cron")
    ci = _flag(fields, "triggers_on_pull_request")
    steps = validate_steps(project, fields.get("steps"), git_sha=pinned.git_sha, ci=ci)
    environment = _environment(project, fields.get("environment"))
    deferring = fields.get("deferring_environment")
    deferring = None if deferring in (None, "") else _environment(project, deferring, "deferring_environment")
    if ci and environment == (deferring or default_environment(project)):
        raise RequestError(
            f"a CI job builds in an environment of its own (its own target), not in {environment.name!r}, which it "
            "compares with and defers to: with production's target a pull request's models could land in "
            "production's custom schemas",
            field="environment",
        )
    return {
        "name": name.strip(),
        "description": description,
        "environment": environment,
        "steps": [step["name"] for step in steps],
        "timeout_seconds": _number(fields, "timeout_seconds", 1, settings.RUN_MAX_TIMEOUT),
        "threads": _number(fields, "threads", 1, 64),
        "generate_docs": _flag(fields, "generate_docs"),
        "run_source_freshness": _flag(fields, "run_source_freshness"),
        "cron": cron,
        "schedule_enabled": schedule_enabled,
        "alert_on_warn": _flag(fields, "alert_on_warn"),
        "triggers_on_pull_request": ci,
        "deferring_environment": deferring,
    }


def _audited(job: Job) -> dict[str, Any]:
    deferring = job.deferring_environment
    return {**snapshot(job), "environment": job.environment.name, "deferring_environment": deferring and deferring.name}


def create_job(*, actor: Any, source: str, project: str, **fields: Any) -> Job:
    clean = validate_job(fields, project=project)
    with transaction.atomic():
        if Job.objects.filter(project=project, name=clean["name"]).exists():
            raise RequestError(f"project {project} already has a job named {clean['name']!r}", field="name")
        job = Job.objects.create(
            project=project, created_by=actor if getattr(actor, "is_authenticated", False) else None, **clean
        )
        _sync_queue_schedule(job)
        record(actor, "job.create", job, after=_audited(job), source=source)
    return job


def update_job(job: Job, *, actor: Any, source: str, **fields: Any) -> Job:
    """Change some fields; the audit row carries the job before and after (its diff)."""
    merged = {name: getattr(job, name) for name in JOB_FIELDS} | fields
    clean = validate_job(merged, project=job.project)
    with transaction.atomic():
        if Job.objects.filter(project=job.project, name=clean["name"]).exclude(pk=job.pk).exists():
            raise RequestError(f"project {job.project} already has a job named {clean['name']!r}", field="name")
        before = _audited(job)
        for name, value in clean.items():
            setattr(job, name, value)
        job.updated_at = timezone.now()
        job.save()
        _sync_queue_schedule(job)
        before, after = changed_fields(before, _audited(job), ignore=("updated_at",))
        if after:
            record(actor, "job.update", job, before=before, after=after, source=source)
    return job


def delete_job(job: Job, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        before = _audited(job)
        if job.q_schedule_id:
            Schedule.objects.filter(pk=job.q_schedule_id).delete()
        for target in job.notification_targets.all():  # they go with the job: each is audited
            delete_target(target, actor=actor, source=source)
        record(actor, "job.delete", job, before=before, source=source)
        job.delete()


def _sync_queue_schedule(job: Job) -> None:
    """Create, update or remove the django-q2 row. Enabling (or changing the cron) computes
    the next slot from now, so slots missed while disabled or down never pile up."""
    if not job.cron:
        if job.q_schedule_id:
            Schedule.objects.filter(pk=job.q_schedule_id).delete()
            Job.objects.filter(pk=job.pk).update(q_schedule_id=None)
            job.q_schedule_id = None
        return
    defaults = {
        "func": "runs.jobs.run_scheduled",
        "args": str(job.pk),
        "schedule_type": Schedule.CRON,
        "cron": job.cron,
        "repeats": -1 if job.schedule_enabled else 0,
        "next_run": next_fire(job.cron),
        "name": f"job-{job.pk}",
    }
    if job.q_schedule_id and Schedule.objects.filter(pk=job.q_schedule_id).update(**defaults):
        return
    q_schedule = Schedule.objects.create(**defaults)
    Job.objects.filter(pk=job.pk).update(q_schedule_id=q_schedule.pk)
    job.q_schedule_id = q_schedule.pk


def with_next_run(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Each job's `next_run` from its django-q2 row (None without an enabled schedule)."""
    next_run = Schedule.objects.filter(pk=OuterRef("q_schedule_id")).values("next_run")[:1]
    return jobs.annotate(next_run=Case(When(schedule_enabled=True, then=Subquery(next_run)), default=None))


def job_steps(job: Job, *, steps: list[str] | None = None, generate_docs: bool | None = None) -> list[str]:
    """What a run of the job executes: the freshness step first (when on), its steps (or the
    override), `dbt docs generate` last (when on)."""
    texts = list(steps if steps is not None else job.steps)
    if job.run_source_freshness:
        texts.insert(0, FRESHNESS_STEP)
    if job.generate_docs if generate_docs is None else generate_docs:
        texts.append(DOCS_STEP)
    return texts


def trigger_job(
    job: Job,
    *,
    actor: Any,
    source: str,
    cause: str = "",
    steps: list[str] | None = None,
    threads: int | None = None,
    target: str | None = None,
    timeout_seconds: int | None = None,
    schema: str | None = None,
    generate_docs: bool | None = None,
    retry_of: Run | None = None,
    run_steps: list[dict[str, Any]] | None = None,
    git_sha: str = "",
    git_branch: str = "",
    pull_request: int | None = None,
) -> Run:
    """A run of the job (a run with steps), validated, audited and queued. `steps` (dbt command
    lines), `threads`, `target`, `timeout_seconds` (0: the job's), `schema` and `generate_docs`
    replace the job's own for this run when given; `run_steps` (already validated RunStep
    fields) is a rerun from failure's. A git project's run is pinned to `git_sha`, else the
    head of `git_branch` or of the project's branch. `pull_request` makes it a CI run of that
    pull request (a CI job's, into `schema`, runs.ci). Refusals name these keywords: a door that
    takes them under other names (dbt Cloud's `*_override`) renames the field."""
    if not isinstance(cause, str) or len(cause) > 255:
        raise RequestError("cause must be text of at most 255 characters", field="cause")
    if steps is not None and not isinstance(steps, list):
        raise RequestError("steps must be a list of dbt command lines", field="steps")
    if generate_docs is not None and not isinstance(generate_docs, bool):
        raise RequestError("generate_docs must be true or false", field="generate_docs")
    if schema not in (None, "") and not (isinstance(schema, str) and SCHEMA.fullmatch(schema)):
        raise RequestError("schema must be a schema name: 1-63 ASCII letters, digits or '_'", field="schema")
    check_schema(schema or "", "schema")
    timeout = timeout_seconds if timeout_seconds not in (None, 0) else job.timeout_seconds
    request = validate_request(
        project=job.project,
        command="",
        kind="dbt",
        timeout_seconds=timeout,
        target=target or "",
        threads=threads if threads is not None else job.threads,
        job_run=True,
        git_sha=git_sha,
        git_branch=git_branch,
    )
    if run_steps is None:
        try:
            run_steps = validate_steps(
                job.project,
                job_steps(job, steps=steps, generate_docs=generate_docs),
                git_sha=request.git_sha,
                ci=job.triggers_on_pull_request,
            )
        except RequestError as exc:
            raise RequestError(exc.message, field="steps", code=exc.code) from None
    return create_run(
        {**request.fields(), "environment": job.environment, "schema": schema or "", "pull_request": pull_request},
        steps=run_steps,
        actor=actor,
        source=source,
        job=job,
        cause=cause,
        retry_of=retry_of,
    )


def _failed_step(run: Run) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """(index, fields, remaining steps' fields) of the step a rerun from failure starts at."""
    if run.state == RunState.SUCCESS:
        raise RequestError(f"run #{run.pk} succeeded: there is nothing to rerun from failure", code=ErrorCode.CONFLICT)
    if not run.is_final:
        raise RequestError(f"run #{run.pk} has not finished yet", field="state", code=ErrorCode.CONFLICT)
    fields = ("name", "command", "select", "exclude", "vars", "full_refresh", "options", "stops_job")
    steps = list(run.steps.order_by("index").values("index", "state", *fields))
    if not steps:  # a run of one command
        steps = [
            {
                "index": 1,
                "state": run.state,
                "name": step_text(run.command, run.select, run.exclude, run.full_refresh),
                "command": run.command,
                "select": run.select,
                "exclude": run.exclude,
                "vars": run.vars,
                "full_refresh": run.full_refresh,
                "options": {},
                "stops_job": True,
            }
        ]
    for position, step in enumerate(steps):
        if step["stops_job"] and step["state"] != StepState.SUCCESS:
            rest = [{name: later[name] for name in fields} for later in steps[position + 1 :]]
            return step["index"], {name: step[name] for name in fields}, rest
    raise RequestError(f"run #{run.pk} has no failed step to rerun", code=ErrorCode.CONFLICT)


def retry_run(run: Run, *, actor: Any, source: str) -> Run:
    """Rerun from failure, with `dbt retry`'s semantics: of the failed step only the nodes
    that errored or were skipped (those depending on what failed) run again, then the steps
    after it; a step that failed before any node ran (a compile error, a cancel) runs whole."""
    if run.kind != "dbt":
        raise RequestError("only dbt runs can be rerun from failure", field="kind", code=ErrorCode.CONFLICT)
    index, step, rest = _failed_step(run)
    names = sorted(
        set(
            run.node_results.filter(step=index, status__in=RETRY_STATUSES)
            .exclude(resource_type="source")
            .values_list("name", flat=True)
        )
    )
    if names and step["command"] in ("build", "run", "test", "seed", "snapshot"):
        options = {name: value for name, value in step["options"].items() if name != "selector"}
        step = {
            **step,
            "select": " ".join(names),
            "exclude": "",
            "options": options,
            "name": step_text(step["command"], " ".join(names), full_refresh=step["full_refresh"], options=options),
        }
    steps = [step, *rest]
    if run.job_id:
        return trigger_job(
            run.job,
            actor=actor,
            source=source,
            cause=f"retry of run #{run.pk}",
            retry_of=run,
            run_steps=steps,
            schema=run.schema,
            target=run.target,
            threads=run.threads,
            timeout_seconds=run.timeout_seconds,
            git_sha=run.git_sha,
            pull_request=run.pull_request,
        )
    request = validate_request(
        project=run.project,
        git_sha=run.git_sha,
        command=step["command"],
        select=step["select"],
        exclude=step["exclude"],
        vars=step["vars"],
        full_refresh=step["full_refresh"],
        timeout_seconds=min(run.timeout_seconds, settings.RUN_MAX_TIMEOUT),
        target=run.target,
        threads=run.threads,
    )
    return create_run({**request.fields(), "environment": run.environment}, actor=actor, source=source, retry_of=run)


def rerun_job(job: Job, *, actor: Any, source: str, cause: str = "") -> Run:
    """dbt Cloud's job rerun: from failure when the job's latest run did not succeed, else a
    new run of the whole job."""
    latest = job.runs.order_by("-queued_at", "-id").first()
    if latest is not None and latest.is_final and latest.state not in (RunState.SUCCESS, RunState.SKIPPED):
        return retry_run(latest, actor=actor, source=source)
    return trigger_job(job, actor=actor, source=source, cause=cause)


def run_scheduled(job_id: int | str) -> int | None:
    """The django-q2 schedule's task: trigger the job (source=schedule). A slot whose previous
    run is still active is recorded as a `skipped` run; a job that no longer validates (a model
    was renamed…) gets an `error` run saying why, so it is seen. Either is audited as a
    trigger (runs.services.create_ended_run)."""
    job = Job.objects.select_related("environment").filter(pk=int(job_id)).first()
    if job is None or not job.schedule_enabled:
        return None
    actor, cause = f"schedule:{job.name}", "cron schedule"
    fields = {"project": job.project, "timeout_seconds": job.timeout_seconds or 1, "environment": job.environment}
    ended = {"actor": actor, "source": Source.SCHEDULE, "job": job, "cause": cause, "at": timezone.now()}
    active = job.runs.active().order_by("queued_at").first()
    if active is not None:
        reason = f"skipped: run #{active.pk} of this job was still {active.state}"
        return create_ended_run(fields, state=RunState.SKIPPED, reason=reason, **ended).pk
    try:
        run = trigger_job(job, actor=actor, source=Source.SCHEDULE, cause=cause)
    except RequestError as exc:
        reason = f"schedule could not trigger: {exc.message}"
        run = create_ended_run(fields, state=RunState.ERROR, reason=reason, **ended)
        logger.warning("job %s: %s", job.pk, exc.message)
        enqueue_notifications(run)
    return run.pk
