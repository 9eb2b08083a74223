from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.models import Source
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


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    # The actor is unknown: name the attempted username, never the password.
    record(None, "auth.login_failed", ("auth.user", username), after={"username": username}, source=_source(request))
