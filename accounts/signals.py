from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.utils import timezone

from audit.models import AuditEvent, Source
from audit.services import record


def _source(request) -> str:
    if request is None:
        return Source.SYSTEM
    return Source.API if request.path.startswith("/api/") else Source.WEB


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    record(user, "auth.login", user, source=_source(request))


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        record(user, "auth.logout", user, source=_source(request))


def attempted_username(typed: str) -> str:
    """What the audit keeps of a failed login's username: the name itself if such a user
    exists, else only its first character and length (it may be a password typed into the
    wrong box, and every viewer reads the audit)."""
    if get_user_model().objects.filter(username=typed).exists():
        return typed
    return f"{typed[:1]}… ({len(typed)} characters, no such user)"


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """One audit row per attempted username and lockout window: a burst of guesses does not
    queue behind the audit chain's lock (django-axes counts every attempt)."""
    username = attempted_username(str(credentials.get("username", ""))[:150])
    since = timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    recent = AuditEvent.objects.filter(
        action="auth.login_failed", target_type="auth.user", target_id=username, created_at__gte=since
    )
    if recent.exists():
        return
    # The actor is unknown: name the attempted username, never the password.
    record(None, "auth.login_failed", ("auth.user", username), after={"username": username}, source=_source(request))
