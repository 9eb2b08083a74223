"""Tell people about failed, error and timed-out runs: email and webhooks, each delivery
recorded. Runs in a queue task, so a slow webhook never holds up a run's worker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from audit.services import record, snapshot
from runs.models import ALERT_STATES, DeliveryStatus, NotificationDelivery, NotificationTarget, Run
from transformation_portal.errors import RequestError

WEBHOOK_ATTEMPTS = 3


def enqueue_notifications(run: Run) -> None:
    if run.state in ALERT_STATES:
        async_task("runs.notifications.notify_run", run.pk, task_name=f"notify-run-{run.pk}", group="notifications")


def targets_for(run: Run):
    scope = Q(schedule__isnull=True) & (Q(project="") | Q(project=run.project))
    if run.schedule_id:
        scope |= Q(schedule_id=run.schedule_id)
    return NotificationTarget.objects.filter(scope, enabled=True)


def payload(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.pk,
        "project": run.project,
        "title": run.title,
        "state": run.state,
        "reason": run.reason,
        "source": run.source,
        "schedule": run.schedule.name if run.schedule_id else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "url": f"{settings.PORTAL_BASE_URL}/runs/{run.pk}/",
    }


def post_webhook(url: str, body: dict[str, Any]) -> tuple[bool, int, int | None, str]:
    """POST JSON with a bounded timeout, retried with backoff: (ok, attempts, status, error)."""
    data = json.dumps(body).encode()
    status, error = None, ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked when the target is saved
            url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "portal"}
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
                status = response.status
                return True, attempt, status, ""
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                return False, attempt, status, error
        except (urllib.error.URLError, OSError) as exc:
            status, error = None, str(getattr(exc, "reason", exc))
        if attempt < WEBHOOK_ATTEMPTS:
            time.sleep(attempt)
    return False, WEBHOOK_ATTEMPTS, status, error


def notify_run(run_id: int) -> int:
    run = Run.objects.select_related("schedule").get(pk=run_id)
    body = payload(run)
    sent = 0
    for target in targets_for(run):
        if target.email_list:
            subject = f"[portal] run #{run.pk} {run.project} {run.get_state_display().lower()}"
            text = f"{run.title}\n{run.get_state_display()}: {run.reason}\n\n{body['url']}\n"
            try:
                send_mail(subject, text, None, target.email_list)
                delivery = {"status": DeliveryStatus.SENT}
            except Exception as exc:  # noqa: BLE001 - a mail failure is recorded, not raised
                delivery = {"status": DeliveryStatus.FAILED, "error": str(exc)}
            NotificationDelivery.objects.create(
                run=run, target=target, channel="email", destination=", ".join(target.email_list), **delivery
            )
            sent += delivery["status"] == DeliveryStatus.SENT
        if target.webhook_url:
            ok, attempts, status, error = post_webhook(target.webhook_url, body)
            NotificationDelivery.objects.create(
                run=run,
                target=target,
                channel="webhook",
                destination=target.webhook_url,
                status=DeliveryStatus.SENT if ok else DeliveryStatus.FAILED,
                attempts=attempts,
                response_status=status,
                error=error,
            )
            sent += ok
    return sent


def create_target(
    *, actor: Any, source: str, project: str = "", schedule=None, emails: str = "", webhook_url: str = ""
) -> NotificationTarget:
    emails = ", ".join(a.strip() for a in emails.split(",") if a.strip())
    if not emails and not webhook_url:
        raise RequestError("give at least one email address or a webhook URL", field="emails")
    if webhook_url and not webhook_url.startswith(("http://", "https://")):
        raise RequestError("the webhook must be an http(s) URL", field="webhook_url")
    with transaction.atomic():
        target = NotificationTarget.objects.create(
            project=project,
            schedule=schedule,
            emails=emails,
            webhook_url=webhook_url,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record(actor, "notification.create", target, after=snapshot(target), source=source)
    return target


def delete_target(target: NotificationTarget, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        record(actor, "notification.delete", target, before=snapshot(target), source=source)
        target.delete()
