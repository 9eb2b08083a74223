"""Tell people about runs: failed, error and timed-out ones (on failure), successes (on
success) and the first success after a failure (on recovery), by email and webhooks, each
delivery recorded. Runs in a queue task, so a slow webhook never holds up a run's worker."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from audit.services import record, snapshot
from runs.models import ALERT_STATES, DeliveryStatus, NotificationDelivery, NotificationTarget, Run, RunState
from transformation_portal.errors import RequestError

WEBHOOK_ATTEMPTS = 3


def enqueue_notifications(run: Run) -> None:
    if run.state in ALERT_STATES or run.state == RunState.SUCCESS:
        async_task("runs.notifications.notify_run", run.pk, task_name=f"notify-run-{run.pk}", group="notifications")


def is_recovery(run: Run) -> bool:
    """A success whose previous final run (of the same job; of the project for runs without
    one) was a failure."""
    earlier = Run.objects.filter(project=run.project, job_id=run.job_id, queued_at__lt=run.queued_at).final()
    previous = earlier.exclude(state=RunState.SKIPPED).order_by("-queued_at", "-id").values_list("state", flat=True)
    return run.state == RunState.SUCCESS and previous.first() in ALERT_STATES


def target_scope(project: str, job_id: int | None) -> Q:
    """Targets of every project, of `project`, and (with a job) of that job."""
    scope = Q(job__isnull=True) & (Q(project="") | Q(project=project))
    return scope | Q(job_id=job_id) if job_id else scope


def targets_for(run: Run):
    """The enabled targets of the run's project (or of every project) and of its job, that
    asked for this kind of news."""
    scope = target_scope(run.project, run.job_id)
    if run.state in ALERT_STATES:
        wanted = Q(on_failure=True)
    else:
        wanted = Q(on_success=True) | (Q(on_recovery=True) if is_recovery(run) else Q(pk__in=[]))
    return NotificationTarget.objects.filter(scope, wanted, enabled=True)


def payload(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.pk,
        "project": run.project,
        "title": run.title,
        "state": run.state,
        "reason": run.reason,
        "source": run.source,
        "job": run.job.name if run.job_id else None,
        "cause": run.cause,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "url": f"{settings.PORTAL_BASE_URL}/runs/{run.pk}/",
    }


def mask_url(url: str) -> str:
    """What people below the operator role see of a webhook (its path is Slack's/Teams' secret)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}…"


def _refused(message: str) -> RequestError:
    return RequestError(message, field="webhook_url")


def check_webhook(url: str) -> tuple[SplitResult, int, str]:
    """The URL's parts, its port and the address to connect to. Every address the host resolves to must
    be global (no loopback, private, link-local, …) unless WEBHOOK_ALLOWED_HOSTS lists the host."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("the webhook's port is not a number") from None
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise _refused("the webhook must be an http(s) URL with a host")
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except (socket.gaierror, UnicodeError):
        raise _refused(f"the webhook's host {host} does not resolve") from None
    if host not in settings.WEBHOOK_ALLOWED_HOSTS:
        for address in addresses:
            if not ipaddress.ip_address(address.partition("%")[0]).is_global:
                raise _refused(
                    f"the webhook's host {host} resolves to {address}, a loopback, private or link-local address; "
                    "list the host in WEBHOOK_ALLOWED_HOSTS to allow it"
                )
    return parts, port, addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address check_webhook approved, never to a fresh DNS answer."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection, http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)  # the certificate names the host


def _post_once(parts: SplitResult, port: int, address: str, data: bytes) -> int:
    """One POST to the checked address; the far end's status only (no redirect followed, no body kept)."""
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(parts.hostname, port, address, settings.WEBHOOK_TIMEOUT_SECONDS)
    path = parts.path or "/"
    try:
        connection.request(
            "POST",
            f"{path}?{parts.query}" if parts.query else path,
            body=data,
            headers={"Content-Type": "application/json", "User-Agent": "portal"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


def post_webhook(url: str, body: dict[str, Any]) -> tuple[bool, int, int | None, str]:
    """POST JSON with a bounded timeout, retried with backoff: (ok, attempts, status, error).
    The host is checked again here (DNS may have changed since the target was saved)."""
    try:
        parts, port, address = check_webhook(url)
    except RequestError as exc:
        return False, 0, None, f"refused: {exc.message}"
    data = json.dumps(body).encode()
    status, error = None, ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            status = _post_once(parts, port, address, data)
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, str(exc) or type(exc).__name__
        else:
            if 200 <= status < 300:
                return True, attempt, status, ""
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
            if status < 500 and status != 429:
                return False, attempt, status, error
        if attempt < WEBHOOK_ATTEMPTS:
            time.sleep(attempt)
    return False, WEBHOOK_ATTEMPTS, status, error


def deliver(target: NotificationTarget, subject: str, text: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one notice to the target by each of its channels (a mail failure is recorded, not
    raised): each delivery's channel, destination, status, attempts, response status, error."""
    deliveries = []
    if target.email_list:
        try:
            send_mail(subject, text, None, target.email_list)
            outcome = {"status": DeliveryStatus.SENT}
        except Exception as exc:  # noqa: BLE001 - a mail failure is recorded, not raised
            outcome = {"status": DeliveryStatus.FAILED, "error": str(exc)}
        deliveries.append({"channel": "email", "destination": ", ".join(target.email_list), **outcome})
    if target.webhook_url:
        ok, attempts, status, error = post_webhook(target.webhook_url, body)
        deliveries.append(
            {
                "channel": "webhook",
                "destination": target.webhook_url,
                "status": DeliveryStatus.SENT if ok else DeliveryStatus.FAILED,
                "attempts": attempts,
                "response_status": status,
                "error": error,
            }
        )
    return deliveries


def notify_run(run_id: int) -> int:
    run = Run.objects.select_related("job").get(pk=run_id)
    body = payload(run)
    subject = f"[portal] run #{run.pk} {run.project} {run.get_state_display().lower()}"
    text = f"{run.title}\n{run.get_state_display()}: {run.reason}\n\n{body['url']}\n"
    sent = 0
    for target in targets_for(run):
        for delivery in deliver(target, subject, text, body):
            NotificationDelivery.objects.create(run=run, target=target, **delivery)
            sent += delivery["status"] == DeliveryStatus.SENT
    return sent


def create_target(
    *,
    actor: Any,
    source: str,
    project: str = "",
    job=None,
    emails: str = "",
    webhook_url: str = "",
    on_failure: bool = True,
    on_success: bool = False,
    on_recovery: bool = False,
) -> NotificationTarget:
    emails = ", ".join(a.strip() for a in emails.split(",") if a.strip())
    if not emails and not webhook_url:
        raise RequestError("give at least one email address or a webhook URL", field="emails")
    if webhook_url:
        check_webhook(webhook_url)
    if not (on_failure or on_success or on_recovery):
        raise RequestError("choose at least one of on failure, on success, on recovery", field="on_failure")
    with transaction.atomic():
        target = NotificationTarget.objects.create(
            project=job.project if job else project,
            job=job,
            on_failure=on_failure,
            on_success=on_success,
            on_recovery=on_recovery,
            emails=emails,
            webhook_url=webhook_url,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record(actor, "notification.create", target, after=_audit_snapshot(target), source=source)
    return target


def delete_target(target: NotificationTarget, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        record(actor, "notification.delete", target, before=_audit_snapshot(target), source=source)
        target.delete()


def _audit_snapshot(target: NotificationTarget) -> dict[str, Any]:
    """Viewers read the audit log: the webhook's secret path stays out of it."""
    return {**snapshot(target), "webhook_url": mask_url(target.webhook_url)}
