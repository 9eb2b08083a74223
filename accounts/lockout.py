"""The page a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """429 with a portal page saying when the lock ends: every failed attempt, even one made
    while locked, restarts the cool-off (axes' default), so it ends a cool-off after this one."""
    last_attempt = getattr(request, "axes_attempt_time", None) or timezone.now()
    ctx = {"try_again_at": last_attempt + settings.AXES_COOLOFF_TIME, "minutes": settings.LOGIN_LOCKOUT_MINUTES}
    return render(request, "registration/locked_out.html", ctx, status=429)
