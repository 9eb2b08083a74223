"""The SLA checker: a django-q2 schedule (every minute, operations migration 0002) that
evaluates every enabled SLA, records each new miss once, notices when an SLA is met again,
and queues one alert per miss and one recovery notice per recovery (email and webhooks, the
job's and project's notification targets, each delivery recorded).

A fixed number of queries however many SLAs: the SLAs, their open misses, one statement per
job kind (LATERAL look-ups per SLA over unnest()ed parameters), the freshness verdicts, one
insert and one update. One checker at a time (a transaction-level advisory lock; a second
one in the same minute finds the first's misses and sends nothing again), and each notice's
task claims it with a conditional update, so a duplicate task sends nothing either."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, DateTimeField, Field, Q, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from lineage.models import FreshnessStatus
from operations.models import Sla, SlaKind, SlaMiss, SlaNotice
from operations.slas import latest_freshness, latest_slot, slot_of
from runs.models import NotificationTarget, Run
from runs.notifications import send, target_scope

logger = logging.getLogger(__name__)

# How far back a duration SLA looks for over-long runs (a run longer than this was seen by
# an earlier pass, unless the checker was down all that time).
LOOKBACK = timedelta(days=1)
LOCK_KEY = "operations.sla_checker"
NOTICES_PER_TASK = 20
RUN_TABLE = Run._meta.db_table
MISS_TABLE = SlaMiss._meta.db_table
STALE = frozenset({FreshnessStatus.ERROR, FreshnessStatus.RUNTIME_ERROR})  # verdicts that miss the SLA
# What a pass reads of each SLA (loading whole jobs would cost more than the checks).
CHECKED_FIELDS = (
    "kind", "project", "job__name", "source_unique_id", "deadline", "time_zone", "weekdays", "max_minutes",
    "updated_at",
)  # fmt: skip

# Per deadline SLA: is there a success in the slot's window, is the slot's miss recorded
# already, the first success after its earliest open miss, and its latest final run before
# the deadline (for the miss's reason).
DEADLINE_SQL = f"""
SELECT s.sla_id, ok.id, known.id, rec.id, rec.finished_at, last.id, last.state, last.reason
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[])
     AS s(sla_id, job_id, opens, due, after)
LEFT JOIN LATERAL (SELECT r.id FROM {RUN_TABLE} r WHERE r.job_id = s.job_id AND r.state = 'success'
                   AND r.finished_at >= s.opens AND r.finished_at <= s.due LIMIT 1) ok ON true
LEFT JOIN LATERAL (SELECT m.id FROM {MISS_TABLE} m WHERE m.sla_id = s.sla_id AND m.slot_at = s.due) known ON true
LEFT JOIN LATERAL (SELECT r.id, r.finished_at FROM {RUN_TABLE} r WHERE r.job_id = s.job_id AND r.state = 'success'
                   AND r.finished_at > s.after ORDER BY r.finished_at LIMIT 1) rec ON true
LEFT JOIN LATERAL (SELECT r.id, r.state, r.reason FROM {RUN_TABLE} r WHERE r.job_id = s.job_id
                   AND r.state <> 'skipped' AND r.finished_at <= s.due ORDER BY r.finished_at DESC LIMIT 1) last ON true
"""  # noqa: S608 - table names from the models; values are parameters
# Per duration SLA: its runs since `since` over the limit (running or not) whose miss is not
# recorded yet, and the first success within the limit started after its latest open miss.
OVER_LONG_SQL = f"""
SELECT s.sla_id, r.id, r.started_at, r.finished_at
FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::timestamptz[]) AS s(sla_id, job_id, minutes, since)
JOIN {RUN_TABLE} r ON r.job_id = s.job_id AND r.started_at >= s.since
WHERE coalesce(r.finished_at, %s::timestamptz) - r.started_at > s.minutes * interval '1 minute'
  AND NOT EXISTS (SELECT 1 FROM {MISS_TABLE} m WHERE m.sla_id = s.sla_id AND m.slot_at = r.started_at)
"""  # noqa: S608
WITHIN_LIMIT_SQL = f"""
SELECT s.sla_id, rec.id, rec.finished_at
FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::timestamptz[]) AS s(sla_id, job_id, minutes, after)
JOIN LATERAL (SELECT r.id, r.finished_at FROM {RUN_TABLE} r WHERE r.job_id = s.job_id AND r.state = 'success'
              AND r.started_at > s.after AND r.finished_at - r.started_at <= s.minutes * interval '1 minute'
              ORDER BY r.finished_at LIMIT 1) rec ON true
"""  # noqa: S608


@dataclass
class Recovery:
    """Open misses of one SLA met again: when, by which run, and which misses were late successes."""

    at: datetime
    run_id: int | None
    misses: list[SlaMiss]
    late: set[int] = field(default_factory=set)


@dataclass
class Pass:
    """What one checker pass found."""

    now: datetime
    open: dict[int, list[SlaMiss]]
    new: list[SlaMiss] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)

    def miss(self, sla: Sla, slot_at: datetime, reason: str, run_id: int | None = None) -> None:
        self.new.append(SlaMiss(sla=sla, slot_at=slot_at, run_id=run_id, detected_at=self.now, reason=reason))

    def recover(self, sla: Sla, at: datetime, run_id: int | None, late: set[int] | None = None) -> None:
        misses = [miss for miss in self.open.get(sla.pk, []) if miss.slot_at < at]
        if misses:
            self.recoveries.append(Recovery(at, run_id, misses, late or set()))


def check_slas(now: datetime | None = None) -> dict[str, int]:
    """The scheduled task: {"slas", "missed", "recovered"} of this pass ({"skipped": 1} while
    another pass holds the lock)."""
    now = now or timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s))", [LOCK_KEY])
            if not cursor.fetchone()[0]:
                return {"skipped": 1}
        slas = list(Sla.objects.filter(enabled=True).select_related("job").only(*CHECKED_FIELDS))
        found = Pass(now, defaultdict(list))
        for miss in SlaMiss.objects.open().filter(sla__enabled=True).order_by("slot_at"):
            found.open[miss.sla_id].append(miss)
        by_kind = defaultdict(list)
        for sla in slas:
            by_kind[sla.kind].append(sla)
        _check_deadlines(by_kind[SlaKind.DEADLINE], found)
        _check_durations(by_kind[SlaKind.DURATION], found)
        if by_kind[SlaKind.FRESHNESS]:
            _check_freshness(by_kind[SlaKind.FRESHNESS], found, latest_freshness())
        created = SlaMiss.objects.bulk_create(found.new) if found.new else []
        _save_recoveries(found.recoveries)
        notices = [([miss.pk], SlaNotice.MISS) for miss in created]
        notices += [([miss.pk for miss in recovery.misses], SlaNotice.RECOVERY) for recovery in found.recoveries]
        if notices:
            transaction.on_commit(lambda: _enqueue(notices))
    if created or found.recoveries:
        logger.info("SLA checker: %d new miss(es), %d recovery(ies)", len(created), len(found.recoveries))
    return {"slas": len(slas), "missed": len(created), "recovered": len(found.recoveries)}


def _rows(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _check_deadlines(slas: list[Sla], found: Pass) -> None:
    if not slas:
        return
    slots = {}
    for sla in slas:
        slot = latest_slot(sla, found.now)
        slots[sla.pk] = slot if slot is not None and slot.due >= sla.updated_at else None
    params = [[sla.pk for sla in slas], [sla.job_id for sla in slas]]
    params += [[getattr(slots[sla.pk], name, None) for sla in slas] for name in ("opens", "due")]
    params.append([found.open[sla.pk][0].slot_at if found.open.get(sla.pk) else None for sla in slas])
    evidence = {row[0]: row[1:] for row in _rows(DEADLINE_SQL, params)}
    for sla in slas:
        ok, known, rec_id, rec_at, last_id, last_state, last_reason = evidence[sla.pk]
        if rec_id is not None:
            late = {m.pk for m in found.open[sla.pk] if m.slot_at < rec_at < slot_of(sla, m.slot_at).next_opens}
            found.recover(sla, rec_at, rec_id, late)
        slot = slots[sla.pk]
        if slot is not None and ok is None and known is None:
            reason = f"no successful run of job {sla.job.name} by {slot.due:%a %Y-%m-%d %H:%M} {sla.time_zone}"
            if last_id is None:
                reason += "; it did not run"
            else:
                reason += f"; its latest run #{last_id} was {last_state}" + (f": {last_reason}" if last_reason else "")
            found.miss(sla, slot.due, reason, last_id)


def _check_durations(slas: list[Sla], found: Pass) -> None:
    if not slas:
        return
    since = [max(sla.updated_at, found.now - LOOKBACK) for sla in slas]
    ids, jobs, minutes = [sla.pk for sla in slas], [sla.job_id for sla in slas], [sla.max_minutes for sla in slas]
    by_id = {sla.pk: sla for sla in slas}
    for sla_id, run_id, started_at, finished_at in _rows(OVER_LONG_SQL, [ids, jobs, minutes, since, found.now]):
        sla = by_id[sla_id]
        took = ((finished_at or found.now) - started_at).total_seconds() / 60
        verb = "ran" if finished_at else "has been running for"
        reason = f"run #{run_id} of job {sla.job.name} {verb} {took:.0f} min, over {sla.max_minutes}"
        found.miss(sla, started_at, reason, run_id)
    missed = [sla for sla in slas if found.open.get(sla.pk)]
    if not missed:
        return
    params = [[s.pk for s in missed], [s.job_id for s in missed], [s.max_minutes for s in missed]]
    params.append([found.open[sla.pk][-1].slot_at for sla in missed])
    for sla_id, run_id, finished_at in _rows(WITHIN_LIMIT_SQL, params):
        found.recover(by_id[sla_id], finished_at, run_id)


def _check_freshness(slas: list[Sla], found: Pass, readings: dict[tuple[str, str], Any]) -> None:
    """Missed while the source's latest verdict is stale (error, or a runtime error: not
    known fresh), one miss per stale spell, from its first stale verdict seen; met again at
    the first verdict that is not. The verdict's run is named, not linked: lineage keeps
    verdicts of runs that retention may since have pruned."""
    for sla in slas:
        reading = readings.get((sla.project, sla.source_unique_id))
        if reading is None or reading.snapshotted_at < sla.updated_at:
            continue
        if reading.status not in STALE:
            found.recover(sla, reading.snapshotted_at, None)
        elif not found.open.get(sla.pk):
            reason = f"source {sla.source_unique_id} of {sla.project} is stale: freshness {reading.status}"
            if reading.max_loaded_at:
                reason += f", last loaded {timezone.localtime(reading.max_loaded_at):%Y-%m-%d %H:%M}"
            found.miss(sla, reading.snapshotted_at, f"{reason} (run #{reading.run_id})")


def _save_recoveries(recoveries: list[Recovery]) -> None:
    """One UPDATE for every recovered miss, conditional on it still being open."""
    if not recoveries:
        return
    by_miss = {miss.pk: recovery for recovery in recoveries for miss in recovery.misses}

    def per_miss(value, output: Field) -> Case | Value:
        pairs = [(pk, value(r, pk)) for pk, r in by_miss.items()]
        whens = [When(pk=pk, then=Value(v, output_field=output)) for pk, v in pairs if v is not None]
        return Case(*whens, default=None, output_field=output) if whens else Value(None, output_field=output)

    SlaMiss.objects.filter(pk__in=by_miss, recovered_at__isnull=True).update(
        recovered_at=per_miss(lambda r, pk: r.at, DateTimeField()),
        recovered_by_id=per_miss(lambda r, pk: r.run_id, BigIntegerField()),
        late_success_at=per_miss(lambda r, pk: r.at if pk in r.late else None, DateTimeField()),
    )


def _enqueue(notices: list[tuple[list[int], str]]) -> None:
    """NOTICES_PER_TASK notices per queue task: a pass that finds many misses at once (after
    an outage) sends a few tasks, not one each, and workers still deliver them in parallel."""
    for start in range(0, len(notices), NOTICES_PER_TASK):
        batch = notices[start : start + NOTICES_PER_TASK]
        async_task(
            "operations.sla_checker.notify", batch, task_name=f"sla-notices-{batch[0][0][0]}", group="notifications"
        )


# --- notices ---------------------------------------------------------------------------


def payload(miss: SlaMiss, notice: str) -> dict[str, Any]:
    sla = miss.sla

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "notice": f"sla.{notice}",
        "sla": sla.name,
        "kind": sla.kind,
        "terms": sla.terms,
        "project": sla.project,
        "job": sla.job.name if sla.job_id else None,
        "source_unique_id": sla.source_unique_id or None,
        "slot_at": iso(miss.slot_at.astimezone(ZoneInfo(sla.time_zone))),  # the deadline as the SLA says it
        "reason": miss.reason,
        "run_id": miss.run_id,
        "detected_at": iso(miss.detected_at),
        "recovered_at": iso(miss.recovered_at),
        "recovered_by_run_id": miss.recovered_by_id,
        "late_success_at": iso(miss.late_success_at),
        "url": f"{settings.PORTAL_BASE_URL}/slas/{sla.pk}/",
    }


def notify(notices: list[tuple[list[int], str]]) -> int:
    """The queue task of some notices (miss_ids, "miss" or "recovery"). Returns how many
    deliveries were sent; one notice's failure never keeps the others from being sent."""
    sent = 0
    for miss_ids, notice in notices:
        try:
            sent += send_notice(miss_ids, notice)
        except Exception:  # noqa: BLE001 - logged; the next notice still goes out
            logger.exception("SLA notice %s of misses %s failed", notice, miss_ids)
    return sent


def send_notice(miss_ids: list[int], notice: str) -> int:
    """One notice (a miss's alert, or one recovery of some misses): claims it (alerted_at /
    recovery_alerted_at, conditional: a duplicate task sends nothing), then tells the targets
    that asked for failures (a miss) or recoveries. Returns how many deliveries were sent."""
    claimed_field = "alerted_at" if notice == SlaNotice.MISS else "recovery_alerted_at"
    claimed = SlaMiss.objects.filter(pk__in=miss_ids, **{f"{claimed_field}__isnull": True})
    if not claimed.update(**{claimed_field: timezone.now()}):
        return 0
    miss = SlaMiss.objects.select_related("sla__job").filter(pk__in=miss_ids).order_by("-slot_at").first()
    if miss is None:  # the SLA was deleted meanwhile
        return 0
    sla = miss.sla
    wanted = Q(on_failure=True) if notice == SlaNotice.MISS else Q(on_recovery=True)
    targets = NotificationTarget.objects.filter(target_scope(sla.project, sla.job_id), wanted, enabled=True)
    body = payload(miss, notice)
    if notice == SlaNotice.MISS:
        subject, text = f"[portal] SLA {sla.name} missed", f"{sla.terms}\nMissed: {miss.reason}\n\n{body['url']}\n"
    else:
        how = "late success" if miss.late_success_at else "met again"
        subject = f"[portal] SLA {sla.name} recovered"
        text = f"{sla.terms}\nRecovered ({how}) after: {miss.reason}\n\n{body['url']}\n"
    return send(targets, subject, text, body, notice=f"sla.{notice}", about=miss)
