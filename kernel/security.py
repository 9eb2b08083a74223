"""Response headers every page carries (Content-Security-Policy, Permissions-Policy), the
masking of connection strings on debug pages and in log lines, and of webhook URLs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.utils.safestring import SafeString, mark_safe
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

# The templates load scripts and styles from /static/ only and carry no inline script.
# Inline style attributes (a progress bar's width) cannot run code and stay allowed.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "camera", "microphone", "geolocation", "payment", "usb", "serial", "bluetooth",
        "midi", "magnetometer", "gyroscope", "accelerometer", "display-capture", "browsing-topics",
    )
)  # fmt: skip


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response


# `scheme://user:secret@host` and `password=secret` (a libpq conninfo).
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
MASK = "********"
MASKED = "…"  # an env var's value as people below the operator role see it


def mask_secrets(text: str) -> str:
    """The text with any password in a connection URL or conninfo replaced by MASK."""
    return _CONNINFO_PASSWORD.sub(rf"\g<1>{MASK}", _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text))


def mask_url(url: str) -> str:
    """What people below the operator role see of a webhook (its path is Slack's/Teams' secret)."""
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}…"


class ConnectionStringReporterFilter(SafeExceptionReporterFilter):
    """Debug pages and error mails hide settings named like a connection string whole."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|CONNINFO|DSN|REDIS", flags=re.IGNORECASE
    )


class MaskingExceptionReporter(ExceptionReporter):
    """Debug pages and error mails: any password left in them (an exception's message, a
    frame's local variable, a setting inside a dict) is masked."""

    def get_traceback_html(self) -> SafeString:
        return mark_safe(mask_secrets(super().get_traceback_html()))  # noqa: S308 - Django's own page, masked

    def get_traceback_text(self) -> SafeString:
        return mark_safe(mask_secrets(super().get_traceback_text()))  # noqa: S308 - Django's own text, masked


class MaskSecretsFilter(logging.Filter):
    """A log handler filter: the formatted message and traceback carry no password."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        return True
