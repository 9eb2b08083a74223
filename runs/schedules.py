"""Cron schedules of dbt runs, each backed by one django-q2 Schedule row."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from croniter import croniter
from django.db import transaction
from django.db.models import Case, OuterRef, QuerySet, Subquery, When
from django.utils import timezone
from django_q.models import Schedule

from audit.models import Source
from audit.services import record, snapshot
from runs.models import Run, RunSchedule, RunState
from runs.services import trigger_run, validate_request
from transformation_portal.errors import RequestError

logger = logging.getLogger(__name__)

SCHEDULE_FIELDS = ("name", "project", "command", "select", "exclude", "vars", "full_refresh", "timeout_seconds", "cron")


def next_fire(cron: str, after: datetime | None = None) -> datetime:
    base = timezone.localtime(after or timezone.now())
    return croniter(cron, base).get_next(datetime)


def _validate(fields: dict[str, Any]) -> dict[str, Any]:
    cron = " ".join(str(fields.get("cron") or "").split())
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise RequestError(f"{cron!r} is not a cron expression (minute hour day month weekday)", field="cron")
    name = str(fields.get("name") or "").strip()
    if not name:
        raise RequestError("a schedule needs a name", field="name")
    request = validate_request(
        project=fields.get("project", ""),
        command=fields.get("command", ""),
        select=fields.get("select", ""),
        exclude=fields.get("exclude", ""),
        vars=fields.get("vars"),
        full_refresh=bool(fields.get("full_refresh")),
        timeout_seconds=fields.get("timeout_seconds"),
    )
    return {
        "name": name[:100],
        "project": request.project,
        "command": request.command,
        "select": request.select,
        "exclude": request.exclude,
        "vars": request.vars,
        "full_refresh": request.full_refresh,
        "timeout_seconds": fields.get("timeout_seconds") or None,
        "cron": cron,
    }


def _sync_queue_schedule(schedule: RunSchedule) -> None:
    """Create or update the django-q2 row. Enabling (or changing the cron) computes the next
    slot from now, so slots missed while disabled or down never pile up."""
    defaults = {
        "func": "runs.schedules.run_scheduled",
        "args": str(schedule.pk),
        "schedule_type": Schedule.CRON,
        "cron": schedule.cron,
        "repeats": -1 if schedule.enabled else 0,
        "next_run": next_fire(schedule.cron),
        "name": f"run-schedule-{schedule.pk}",
    }
    q_schedule = Schedule.objects.filter(pk=schedule.q_schedule_id).first() if schedule.q_schedule_id else None
    if q_schedule is None:
        q_schedule = Schedule.objects.create(**defaults)
        RunSchedule.objects.filter(pk=schedule.pk).update(q_schedule_id=q_schedule.pk)
        schedule.q_schedule_id = q_schedule.pk
    else:
        Schedule.objects.filter(pk=q_schedule.pk).update(**defaults)


def create_schedule(*, actor: Any, source: str, **fields: Any) -> RunSchedule:
    clean = _validate(fields)
    if RunSchedule.objects.filter(project=clean["project"], name=clean["name"]).exists():
        raise RequestError(f"project {clean['project']} already has a schedule named {clean['name']!r}", field="name")
    with transaction.atomic():
        schedule = RunSchedule.objects.create(
            **clean, created_by=actor if getattr(actor, "is_authenticated", False) else None
        )
        _sync_queue_schedule(schedule)
        record(actor, "schedule.create", schedule, after=snapshot(schedule), source=source)
    return schedule


def set_enabled(schedule: RunSchedule, enabled: bool, *, actor: Any, source: str) -> RunSchedule:
    with transaction.atomic():
        before = snapshot(schedule)
        schedule.enabled = enabled
        schedule.save(update_fields=["enabled"])
        _sync_queue_schedule(schedule)
        record(
            actor,
            "schedule.enable" if enabled else "schedule.disable",
            schedule,
            before=before,
            after=snapshot(schedule),
            source=source,
        )
    return schedule


def delete_schedule(schedule: RunSchedule, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        before = snapshot(schedule)
        if schedule.q_schedule_id:
            Schedule.objects.filter(pk=schedule.q_schedule_id).delete()
        record(actor, "schedule.delete", schedule, before=before, source=source)
        schedule.delete()


def with_next_run(schedules: QuerySet[RunSchedule]) -> QuerySet[RunSchedule]:
    """Each schedule's `next_run` from its django-q2 row (None while disabled), in the same query."""
    next_run = Schedule.objects.filter(pk=OuterRef("q_schedule_id")).values("next_run")[:1]
    return schedules.annotate(next_run=Case(When(enabled=True, then=Subquery(next_run)), default=None))


def run_scheduled(schedule_id: int | str) -> int | None:
    """The django-q2 schedule's task: trigger the run (source=schedule). If the schedule no
    longer validates (a model was renamed…), an `error` run says why, so it is seen."""
    schedule = RunSchedule.objects.filter(pk=int(schedule_id)).first()
    if schedule is None or not schedule.enabled:
        return None
    try:
        run = trigger_run(
            project=schedule.project,
            command=schedule.command,
            select=schedule.select,
            exclude=schedule.exclude,
            vars=schedule.vars,
            full_refresh=schedule.full_refresh,
            timeout_seconds=schedule.timeout_seconds,
            actor=f"schedule:{schedule.name}",
            source=Source.SCHEDULE,
            schedule=schedule,
        )
    except RequestError as exc:
        now = timezone.now()
        run = Run.objects.create(
            project=schedule.project,
            command=schedule.command,
            select=schedule.select,
            exclude=schedule.exclude,
            vars=schedule.vars,
            full_refresh=schedule.full_refresh,
            timeout_seconds=schedule.timeout_seconds or 1,
            source=Source.SCHEDULE,
            schedule=schedule,
            state=RunState.ERROR,
            reason=f"schedule could not trigger: {exc.message}",
            started_at=now,
            finished_at=now,
        )
        logger.warning("schedule %s: %s", schedule.pk, exc.message)
        from runs.notifications import enqueue_notifications

        enqueue_notifications(run)
    return run.pk
