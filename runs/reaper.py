"""The reaper (a django-q2 schedule, every minute): runs lost by their worker or by the
queue's broker end `error` with the reason, or are sent to the queue again; never started twice
(the worker's claim makes a duplicate delivery harmless)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.utils import timezone

from runs.backends import terminate_backends
from runs.models import Run, RunState
from runs.notifications import enqueue_notifications
from runs.progress import LogWriter
from runs.registry import stop_leftover_dbt
from runs.services import enqueue

logger = logging.getLogger(__name__)


def reap_lost_runs() -> int:
    """Periodic (django-q2 schedule, every minute): a run whose worker stopped beating is
    marked `error` (worker lost), never started again, and its warehouse backends are
    killed; its dbt process group is stopped only when the run is this worker's own
    (PORTAL_WORKER_NAME), else it is kept for its worker to stop when it starts again. Queued
    runs whose task was lost are sent to the queue again, or ended (requeue_lost_tasks).
    Returns how many runs it changed."""
    now = timezone.now()
    return _reap_stale(now) + requeue_lost_tasks(now)


def _reap_stale(now: datetime) -> int:
    stale_before = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    reaped = 0
    lost = Run.objects.filter(state__in=[RunState.STARTING, RunState.RUNNING], heartbeat_at__lt=stale_before)
    for run in lost:
        since = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
        reason = f"worker lost: no heartbeat from {run.worker or 'the worker'} since {since}"
        if not Run.objects.reap(run, reason=reason, at=now):
            continue
        reaped += 1
        notes = [f"reaper: {reason}"]
        if run.process_group and run.worker == settings.PORTAL_WORKER_NAME:
            stop_leftover_dbt(run, "reaper")  # its dbt is on this host: stopped before its backends go
        elif run.process_group:
            notes.append(
                f"reaper ({settings.PORTAL_WORKER_NAME}): dbt process group {run.process_group} belongs to worker "
                f"{run.worker}, which stops it when it starts again"
            )
        try:
            left = terminate_backends(run.pk)
        except psycopg.Error as exc:
            notes.append(f"reaper: could not check warehouse connections: {exc}")
        else:
            if left:
                notes.append(f"reaper: terminated {left} leftover warehouse connection(s)")
        run.refresh_from_db()
        writer = LogWriter(run)
        for note in notes:
            writer.write(note)
        writer.flush()
        enqueue_notifications(run)
        logger.warning("run %s: %s", run.pk, reason)
    return reaped


def requeue_lost_tasks(now: datetime) -> int:
    """A run still queued RUN_REQUEUE_AFTER_SECONDS after it was last sent to the queue, whose
    task looks lost (see _passed_over), is sent again, up to RUN_REQUEUE_ATTEMPTS times; then
    it ends `error`, lost in the queue. Each step is said in the run's log."""
    changed = 0
    waiting = Run.objects.filter(
        state=RunState.QUEUED, enqueued_at__lt=now - timedelta(seconds=settings.RUN_REQUEUE_AFTER_SECONDS)
    ).order_by("enqueued_at")
    for run in waiting:
        if not _passed_over(run):
            continue
        waited = int((now - run.enqueued_at).total_seconds())
        if run.enqueue_attempts > settings.RUN_REQUEUE_ATTEMPTS:
            reason = (
                f"lost in the queue: sent to the queue {run.enqueue_attempts} times, "
                f"no worker took it (last sent {waited} s ago)"
            )
            if not Run.objects.lose_in_queue(run, reason=reason, at=now):
                continue
            note = f"reaper: {reason}"
        else:
            if not Run.objects.resend(run, at=now):
                continue
            enqueue(run.pk)
            note = (
                f"reaper: still queued {waited} s after it was sent to the queue and no worker took it: "
                f"sent again (attempt {run.enqueue_attempts + 1} of {settings.RUN_REQUEUE_ATTEMPTS + 1})"
            )
        changed += 1
        run.refresh_from_db()
        writer = LogWriter(run)
        writer.write(note)
        writer.flush()
        if run.state == RunState.ERROR:
            enqueue_notifications(run)
        logger.warning("run %s: %s", run.pk, note)
    return changed


def _passed_over(run: Run) -> bool:
    """Its task is lost rather than waiting behind busy workers: no run is in progress (idle
    workers would have taken it), or one sent to the queue after it was claimed (the queue is
    first in, first out)."""
    in_progress = Run.objects.filter(state__in=[RunState.STARTING, RunState.RUNNING])
    later_claimed = Run.objects.filter(enqueued_at__gt=run.enqueued_at, started_at__isnull=False)
    return not in_progress.exists() or later_claimed.exists()
