"""Tell people about runs: failed, error and timed-out ones (on failure; and successes with
warn-severity test failures of a job that alerts on warn), successes (on success) and the
first success after a failure (on recovery), by email and webhooks, each delivery recorded.
Webhook bodies are signed (X-Portal-Signature, HMAC-SHA256 with the target's secret). Runs in
a queue task, so a slow webhook never holds up a run's worker."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import models, transaction
from django.db.models import Q
from django_q.tasks import async_task

from audit.services import changed_fields, record, snapshot
from kernel.errors import RequestError
from kernel.security import mask_url
from kernel.webhooks import check_webhook
from runs.models import (
    ALERT_STATES,
    RUN_NOTICE,
    DeliveryStatus,
    NodeStatus,
    NotificationDelivery,
    NotificationTarget,
    Run,
    RunState,
)

WEBHOOK_ATTEMPTS = 3
SIGNATURE_HEADER = "X-Portal-Signature"
TIMESTAMP_HEADER = "X-Portal-Timestamp"
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200
# What the audit log says of a changed secret (never the secret itself).
SECRET_BEFORE, SECRET_AFTER = "(previous secret)", "(new secret)"
TARGET_FIELDS = ("project", "job", "emails", "webhook_url", "on_failure", "on_success", "on_recovery", "enabled")


def enqueue_notifications(run: Run) -> None:
    """The run's news once it ended: its targets' notices, and a CI run's commit status (runs.ci)."""
    if run.state in ALERT_STATES or run.state == RunState.SUCCESS:
        async_task("runs.notifications.notify_run", run.pk, task_name=f"notify-run-{run.pk}", group="notifications")
    if run.pull_request is not None and run.kind == "dbt":
        async_task("runs.ci.post_status", run.pk, task_name=f"ci-status-{run.pk}", group="notifications")


def is_recovery(run: Run) -> bool:
    """A success whose previous final run (of the same job; of the project for runs without
    one) was a failure."""
    earlier = Run.objects.filter(project=run.project, job_id=run.job_id, queued_at__lt=run.queued_at).final()
    previous = earlier.exclude(state=RunState.SKIPPED).order_by("-queued_at", "-id").values_list("state", flat=True)
    return run.state == RunState.SUCCESS and previous.first() in ALERT_STATES


def warned_tests(run: Run) -> list[dict[str, Any]]:
    """The tests that warned (warn severity, failing) in a success of a job that alerts on
    warn, once each (a test in two steps: its later result); [] for any other run."""
    if run.state != RunState.SUCCESS or not (run.job_id and run.job.alert_on_warn):
        return []
    warned = run.node_results.filter(status=NodeStatus.WARN, resource_type="test")
    rows = warned.order_by("unique_id", "-step").distinct("unique_id")
    return list(rows.values("unique_id", "name", "failures", "message"))


def target_scope(project: str, job_id: int | None) -> Q:
    """Targets of every project, of `project`, and (with a job) of that job."""
    scope = Q(job__isnull=True) & (Q(project="") | Q(project=project))
    return scope | Q(job_id=job_id) if job_id else scope


def targets_for(run: Run, *, warned: bool = False):
    """The enabled targets of the run's project (or of every project) and of its job, that
    asked for this kind of news: a success that `warned` is news for on-failure targets too."""
    scope = target_scope(run.project, run.job_id)
    if run.state in ALERT_STATES:
        wanted = Q(on_failure=True)
    else:
        wanted = Q(on_success=True)
        if is_recovery(run):
            wanted |= Q(on_recovery=True)
        if warned:
            wanted |= Q(on_failure=True)
    return NotificationTarget.objects.filter(scope, wanted, enabled=True)


def payload(run: Run, warnings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
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
        "warnings": [{key: test[key] for key in ("unique_id", "name", "failures")} for test in warnings or []],
    }


def email_message(run: Run, warnings: list[dict[str, Any]]) -> tuple[str, str]:
    """Subject and text; a success with warnings names the tests that warned."""
    state = run.get_state_display().lower()
    text = f"{run.title}\n{run.get_state_display()}: {run.reason}\n"
    if warnings:
        state += f" with {len(warnings)} test warning(s)"
        text += "\nTests that warned:\n" + "".join(
            f"- {test['name']} ({test['failures']} failing row(s)): {test['message']}\n" for test in warnings
        )
    return f"[portal] run #{run.pk} {run.project} {state}", f"{text}\n{settings.PORTAL_BASE_URL}/runs/{run.pk}/\n"


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


def sign(secret: str, timestamp: str, data: bytes) -> str:
    """X-Portal-Signature: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` keyed
    with the target's secret. The timestamp is signed too, so a receiver that refuses old
    timestamps refuses a replayed delivery."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + data, hashlib.sha256).hexdigest()


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """The delivery's deadline passed: end whatever the connection waits for (a read, a
    write, the TLS handshake)."""
    cut.set()
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


def _post_once(parts: SplitResult, port: int, address: str, data: bytes, secret: str, deadline: float) -> int:
    """One signed POST to the checked address; the far end's status only (no redirect
    followed, no body kept). Each attempt is signed with its own timestamp. Each read waits
    at most WEBHOOK_TIMEOUT_SECONDS, and a watchdog shuts the socket at the delivery's
    `deadline` (time.monotonic()): a receiver trickling bytes resets the one, never the other."""
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(parts.hostname, port, address, min(settings.WEBHOOK_TIMEOUT_SECONDS, _left(deadline)))
    path = parts.path or "/"
    timestamp = str(int(time.time()))
    cut = threading.Event()
    watchdog = threading.Timer(_left(deadline), _cut, [connection, cut])
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "POST",
            f"{path}?{parts.query}" if parts.query else path,
            body=data,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "portal",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(secret, timestamp, data),
            },
        )
        status = connection.getresponse().status
    finally:
        watchdog.cancel()
        connection.close()
    if cut.is_set():  # a cut connection reads as the end of the headers: not an answer
        raise TimeoutError("the delivery deadline passed")
    return status


def post_webhook(url: str, body: dict[str, Any], *, secret: str) -> tuple[bool, int, int | None, str]:
    """POST JSON signed with `secret`, retried with backoff, all within one wall-clock deadline
    (WEBHOOK_DEADLINE_SECONDS): (ok, attempts, status, error). The host is checked again here
    (DNS may have changed since the target was saved)."""
    try:
        parts, port, address = check_webhook(url)
    except RequestError as exc:
        return False, 0, None, f"refused: {exc.message}"
    data = json.dumps(body).encode()
    seconds = settings.WEBHOOK_DEADLINE_SECONDS
    deadline = time.monotonic() + seconds
    out_of_time = f"no answer within the delivery deadline (WEBHOOK_DEADLINE_SECONDS={seconds})"
    status, error = None, ""
    for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
        try:
            status = _post_once(parts, port, address, data, secret, deadline)
        except (OSError, http.client.HTTPException) as exc:
            status, error = None, out_of_time if not _left(deadline) else str(exc) or type(exc).__name__
        else:
            if 200 <= status < 300:
                return True, attempt, status, ""
            error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
            if status < 500 and status != 429:
                return False, attempt, status, error
        if attempt == WEBHOOK_ATTEMPTS or _left(deadline) <= attempt:  # no time for the backoff and a try
            break
        time.sleep(attempt)
    return False, attempt, status, error


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
        ok, attempts, status, error = post_webhook(target.webhook_url, body, secret=target.secret)
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
    warnings = warned_tests(run)
    body = payload(run, warnings)
    subject, text = email_message(run, warnings)
    return send(targets_for(run, warned=bool(warnings)), subject, text, body, run=run)


def send(
    targets: Iterable[NotificationTarget],
    subject: str,
    text: str,
    body: dict[str, Any],
    *,
    run: Run | None = None,
    notice: str = RUN_NOTICE,
    about: models.Model | None = None,
) -> int:
    """Deliver one notice to each target and record every delivery, about `run` or (a
    higher layer's notice) about `about` under its `notice` name. Returns how many were sent."""
    sent = 0
    for target in targets:
        for delivery in deliver(target, subject, text, body):
            NotificationDelivery.objects.create(run=run, notice=notice, subject=about, target=target, **delivery)
            sent += delivery["status"] == DeliveryStatus.SENT
    return sent


def _emails(value: Any) -> str:
    if not isinstance(value, str):
        raise RequestError("emails must be text: comma-separated addresses", field="emails")
    addresses = [a.strip() for a in value.split(",") if a.strip()]
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise RequestError(f"{address!r} is not an email address", field="emails") from None
    return ", ".join(addresses)


def _secret(value: Any) -> str:
    if not isinstance(value, str) or not SECRET_MIN_LENGTH <= len(value) <= SECRET_MAX_LENGTH or value != value.strip():
        raise RequestError(
            f"secret must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters, without spaces at either end",
            field="secret",
        )
    return value


def validate_target(fields: dict[str, Any]) -> dict[str, Any]:
    """The clean fields of a target (a job's target takes the job's project); RequestError
    naming the field."""
    job = fields.get("job")
    for flag in ("on_failure", "on_success", "on_recovery", "enabled"):
        if not isinstance(fields[flag], bool):
            raise RequestError(f"{flag} must be true or false", field=flag)
    emails = _emails(fields.get("emails") or "")
    webhook_url = fields.get("webhook_url") or ""
    if not emails and not webhook_url:
        raise RequestError("give at least one email address or a webhook URL", field="emails")
    if webhook_url:
        check_webhook(webhook_url)
    if not (fields["on_failure"] or fields["on_success"] or fields["on_recovery"]):
        raise RequestError("choose at least one of on failure, on success, on recovery", field="on_failure")
    return {
        "project": job.project if job else fields.get("project") or "",
        "job": job,
        "emails": emails,
        "webhook_url": webhook_url,
        **{flag: fields[flag] for flag in ("on_failure", "on_success", "on_recovery", "enabled")},
    }


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
    enabled: bool = True,
    secret: str = "",
) -> NotificationTarget:
    """A new target; its webhook secret is `secret` or, when blank, a new random one. The
    caller shows target.secret once: nothing shows it again."""
    clean = validate_target(
        {
            "project": project, "job": job, "emails": emails, "webhook_url": webhook_url, "on_failure": on_failure,
            "on_success": on_success, "on_recovery": on_recovery, "enabled": enabled,
        }
    )  # fmt: skip
    with transaction.atomic():
        target = NotificationTarget.objects.create(
            **clean,
            secret=_secret(secret) if secret else secrets.token_urlsafe(32),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        record(actor, "notification.create", target, after=_audit_snapshot(target), source=source)
    return target


def update_target(target: NotificationTarget, *, actor: Any, source: str, **fields: Any) -> NotificationTarget:
    """Change some fields (a new `secret` replaces the old one); the audit row carries the
    changed fields before and after, a secret only as the fact that it changed."""
    secret = _secret(fields.pop("secret")) if "secret" in fields else target.secret
    merged = {name: getattr(target, name) for name in TARGET_FIELDS} | fields
    clean = validate_target(merged)
    with transaction.atomic():
        before = _audit_snapshot(target)
        for name, value in clean.items():
            setattr(target, name, value)
        changed_secret = secret != target.secret
        target.secret = secret
        target.save()
        before, after = changed_fields(before, _audit_snapshot(target))
        if changed_secret:
            before["secret"], after["secret"] = SECRET_BEFORE, SECRET_AFTER
        if before or after:
            record(actor, "notification.update", target, before=before, after=after, source=source)
    return target


def delete_target(target: NotificationTarget, *, actor: Any, source: str) -> None:
    with transaction.atomic():
        record(actor, "notification.delete", target, before=_audit_snapshot(target), source=source)
        target.delete()


def _audit_snapshot(target: NotificationTarget) -> dict[str, Any]:
    """Viewers read the audit log: the webhook's secret path and the signing secret stay out of it."""
    return {**snapshot(target, exclude=("secret",)), "webhook_url": mask_url(target.webhook_url)}
