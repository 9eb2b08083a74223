"""SLAs: validating, creating, changing and deleting them (every change audited, pages and
API alike), when a deadline SLA is due, and each SLA's status now (met, missed, pending) for
pages and the dashboard."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import changed_fields, record, snapshot
from kernel.errors import RequestError
from lineage import freshness
from lineage.models import Node, Snapshot, SourceFreshness
from operations.models import WEEKDAYS, Sla, SlaKind, SlaMiss
from runs.models import Job, Run, RunState

SLA_FIELDS = (
    "name",
    "kind",
    "job",
    "project",
    "source_unique_id",
    "deadline",
    "time_zone",
    "weekdays",
    "max_minutes",
    "enabled",
)
HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_MINUTES = 7 * 24 * 60


class Status:
    MET = "met"
    MISSED = "missed"
    PENDING = "pending"


def _refused(message: str, field: str) -> RequestError:
    return RequestError(message, field=field)


def _job(value: Any) -> Job:
    if isinstance(value, Job):
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise _refused("job must be a job id", "job")
    job = Job.objects.filter(pk=value).first()
    if job is None:
        raise _refused(f"there is no job {value}", "job")
    return job


def _deadline(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(second=0, microsecond=0)
    match = HH_MM.match(value) if isinstance(value, str) else None
    if match is None:
        raise _refused(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)", "deadline")
    return time(int(match[1]), int(match[2]))


def _time_zone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _refused("time_zone must be an IANA time zone name, e.g. Europe/Paris", "time_zone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _refused(f"{value!r} is not a time zone (an IANA name, e.g. Europe/Paris)", "time_zone") from None
    if value not in available_timezones():  # ZoneInfo also opens paths such as "posixrules"
        raise _refused(f"{value!r} is not a time zone (an IANA name, e.g. Europe/Paris)", "time_zone")
    return value


def _weekdays(value: Any) -> list[str]:
    if value in (None, ""):
        return list(WEEKDAYS)
    days = [str(day).strip().lower()[:3] for day in value] if isinstance(value, list | tuple) else None
    if not days or any(day not in WEEKDAYS for day in days):
        raise _refused(f"weekdays must be a non-empty list of {', '.join(WEEKDAYS)}", "weekdays")
    return [day for day in WEEKDAYS if day in days]


def _max_minutes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_MINUTES:
        raise _refused(f"max_minutes must be a whole number of minutes from 1 to {MAX_MINUTES}", "max_minutes")
    return value


def _source(project: Any, source: Any) -> tuple[str, str]:
    """The project and unique_id of a source in the project's current manifest."""
    if not isinstance(project, str) or not project:
        raise _refused("a freshness SLA needs the source's project", "project")
    if not isinstance(source, str) or not source:
        raise _refused(
            "a freshness SLA needs the source's unique_id, e.g. source.my_project.raw.orders", "source_unique_id"
        )
    current = Snapshot.objects.current().of_project(project).first()
    if current is None:
        raise _refused(f"project {project} has no manifest yet (run dbt parse first)", "project")
    if not Node.objects.filter(snapshot=current, resource_type="source", unique_id=source).exists():
        raise _refused(f"project {project} has no source {source}", "source_unique_id")
    return project, source


def validate_sla(fields: dict[str, Any]) -> dict[str, Any]:
    """The clean fields of an SLA; RequestError naming the field at fault. Fields another
    kind uses are cleared."""
    name = fields.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise _refused("an SLA needs a name of at most 100 characters", "name")
    kind = fields.get("kind")
    if kind not in SlaKind.values:
        raise _refused(f"kind must be one of {', '.join(SlaKind.values)}", "kind")
    enabled = fields.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _refused("enabled must be true or false", "enabled")
    clean = {
        "name": name.strip(), "kind": kind, "enabled": enabled, "job": None, "source_unique_id": "", "deadline": None,
        "time_zone": "UTC", "weekdays": list(WEEKDAYS), "max_minutes": None,
    }  # fmt: skip
    if kind == SlaKind.FRESHNESS:
        clean["project"], clean["source_unique_id"] = _source(fields.get("project"), fields.get("source_unique_id"))
        return clean
    if fields.get("job") in (None, ""):
        raise _refused("this SLA is on a job: give its id", "job")
    job = _job(fields["job"])
    clean |= {"job": job, "project": job.project}
    if kind == SlaKind.DEADLINE:
        if fields.get("deadline") in (None, ""):
            raise _refused("a 'succeeded by' SLA needs a deadline as HH:MM", "deadline")
        clean |= {
            "deadline": _deadline(fields["deadline"]),
            "time_zone": _time_zone(fields.get("time_zone") or "UTC"),
            "weekdays": _weekdays(fields.get("weekdays")),
        }
    else:
        clean["max_minutes"] = _max_minutes(fields.get("max_minutes"))
    return clean


def _audited(sla: Sla) -> dict[str, Any]:
    after = snapshot(sla)
    return {**after, "deadline": f"{sla.deadline:%H:%M}" if sla.deadline else None}


def _name_taken(name: str, sla: Sla | None = None) -> None:
    others = Sla.objects.filter(name=name)
    if sla is not None:
        others = others.exclude(pk=sla.pk)
    if others.exists():
        raise _refused(f"there is already an SLA named {name!r}", "name")


def create_sla(*, actor: Any, source: str, **fields: Any) -> Sla:
    clean = validate_sla(fields)
    with transaction.atomic():
        _name_taken(clean["name"])
        sla = Sla.objects.create(created_by=actor if getattr(actor, "is_authenticated", False) else None, **clean)
        record(actor, "sla.create", sla, after=_audited(sla), source=source)
    return sla


def update_sla(sla: Sla, *, actor: Any, source: str, **fields: Any) -> Sla:
    """Change some fields; the audit row carries the changed ones before and after. The SLA's
    slots start again after the change (updated_at)."""
    current = {name: getattr(sla, name) for name in SLA_FIELDS}
    clean = validate_sla(current | fields)
    with transaction.atomic():
        _name_taken(clean["name"], sla)
        before = _audited(sla)
        for name, value in clean.items():
            setattr(sla, name, value)
        before, after = changed_fields(before, _audited(sla), ignore=("updated_at",))
        if after:
            sla.updated_at = timezone.now()
            sla.save()
            record(actor, "sla.update", sla, before=before, after=after, source=source)
    return sla


def delete_sla(sla: Sla, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        record(actor, "sla.delete", sla, before=_audited(sla), source=source)
        sla.delete()


# --- when a deadline is due ------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One due day of a deadline SLA: the window an on-time success must finish in, and
    when the next due day's window opens (a success before then is the slot's, late)."""

    opens: datetime
    due: datetime
    next_opens: datetime


def _day_start(day, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone)


def _slot_of_day(sla: Sla, day, zone: ZoneInfo) -> Slot:
    after = day + timedelta(days=1)
    while WEEKDAYS[after.weekday()] not in sla.weekdays:
        after += timedelta(days=1)
    return Slot(_day_start(day, zone), datetime.combine(day, sla.deadline, zone), _day_start(after, zone))


def latest_slot(sla: Sla, now: datetime) -> Slot | None:
    """The last due day whose deadline has passed (None within a week: no due day)."""
    zone = ZoneInfo(sla.time_zone)
    today = now.astimezone(zone).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if WEEKDAYS[day.weekday()] in sla.weekdays:
            slot = _slot_of_day(sla, day, zone)
            if slot.due <= now:
                return slot
    return None


def slot_of(sla: Sla, due: datetime) -> Slot:
    """The slot whose deadline is `due` (a recorded miss's slot_at)."""
    zone = ZoneInfo(sla.time_zone)
    return _slot_of_day(sla, due.astimezone(zone).date(), zone)


def upcoming_slot(sla: Sla, now: datetime) -> Slot | None:
    """Today's slot when today is due and its deadline is still ahead."""
    zone = ZoneInfo(sla.time_zone)
    today = now.astimezone(zone).date()
    if WEEKDAYS[today.weekday()] not in sla.weekdays:
        return None
    slot = _slot_of_day(sla, today, zone)
    return slot if slot.due > now else None


# --- status now ------------------------------------------------------------------------


@dataclass
class SlaStatus:
    sla: Sla
    status: str
    detail: str
    open_miss: SlaMiss | None = None


def latest_freshness() -> dict[tuple[str, str], SourceFreshness]:
    """The latest `dbt source freshness` verdict per (project, source unique_id)
    (lineage.freshness, fed from each run's sources.json): all freshness SLAs read."""
    return {(row.project, row.unique_id): row for row in freshness.latest()}


def status_summary(now: datetime | None = None) -> list[SlaStatus]:
    """Every SLA's status now, in four queries however many SLAs: missed (an open miss),
    pending (due later today and not yet met today; or never evaluated yet), met."""
    now = now or timezone.now()
    slas = list(Sla.objects.select_related("job"))
    open_misses: dict[int, SlaMiss] = {}
    for miss in SlaMiss.objects.open().filter(sla__in=slas).order_by("slot_at"):
        open_misses[miss.sla_id] = miss  # the latest
    job_ids = {sla.job_id for sla in slas if sla.job_id}
    last_success = dict(
        Run.objects.filter(job_id__in=job_ids, state=RunState.SUCCESS)
        .values("job_id")
        .annotate(at=Max("finished_at"))
        .values_list("job_id", "at")
    )
    readings = latest_freshness() if any(sla.kind == SlaKind.FRESHNESS for sla in slas) else {}
    summary = []
    for sla in slas:
        miss = open_misses.get(sla.pk)
        if not sla.enabled:
            summary.append(SlaStatus(sla, Status.PENDING, "disabled", miss))
        elif miss is not None:
            summary.append(SlaStatus(sla, Status.MISSED, miss.reason, miss))
        else:
            summary.append(SlaStatus(sla, *_not_missed(sla, now, last_success.get(sla.job_id), readings)))
    return summary


def count_by_status(statuses: list[SlaStatus]) -> dict[str, int]:
    """How many SLAs are missed, pending and met (in that order: the worst first)."""
    order = (Status.MISSED, Status.PENDING, Status.MET)
    return {status: sum(s.status == status for s in statuses) for status in order}


def _not_missed(sla: Sla, now: datetime, success_at: datetime | None, readings: dict) -> tuple[str, str]:
    if sla.kind == SlaKind.DEADLINE:
        upcoming = upcoming_slot(sla, now)
        if upcoming is not None and (success_at is None or success_at < upcoming.opens):
            return Status.PENDING, f"due by {upcoming.due:%H:%M} {sla.time_zone} today"
        if success_at is None:
            return Status.PENDING, "no successful run yet"
        return Status.MET, f"last success {timezone.localtime(success_at):%Y-%m-%d %H:%M}"
    if sla.kind == SlaKind.DURATION:
        if success_at is None:
            return Status.PENDING, "no successful run yet"
        return Status.MET, f"no run over {sla.max_minutes} min"
    reading = readings.get((sla.project, sla.source_unique_id))
    if reading is None:
        return Status.PENDING, "no freshness verdict yet"
    return Status.MET, f"freshness {reading.status}"
