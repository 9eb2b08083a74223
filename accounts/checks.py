"""`manage.py check --deploy`: fails while any active account still opens with a demo
password (`<name>-demo`, what create_demo_users sets on a development machine). One
password hash per active account; the check never writes (no rehash on a match). Warns when
the client address is taken from X-Forwarded-For while the portal serves TLS itself."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError


def demo_password(username: str) -> str:
    return f"{username}-demo"


@register(Tags.security, deploy=True)
def check_no_demo_passwords(app_configs=None, **kwargs) -> list:
    try:
        users = list(get_user_model().objects.filter(is_active=True).only("username", "password"))
    except DatabaseError as exc:
        return [Warning(f"could not look for demo passwords: {exc}".strip(), id="accounts.W001")]
    return [
        Error(
            f"user {user.username!r} logs in with the demo password {demo_password(user.username)!r}",
            hint="change its password or deactivate the account (demo users belong to development only)",
            id="accounts.E001",
        )
        for user in users
        if user.has_usable_password() and check_password(demo_password(user.username), user.password)
    ]


@register(Tags.security, deploy=True)
def check_no_forwarded_for_when_serving_tls(app_configs=None, **kwargs) -> list:
    """TLS_CERT_FILE/TLS_KEY_FILE: clients reach gunicorn directly, so a TRUSTED_PROXY_COUNT
    above 0 lets each pick its own address (X-Forwarded-For) for the login lockout and the
    bad-token throttle."""
    if settings.TLS_PAIR is None or not settings.TRUSTED_PROXY_COUNT:
        return []
    return [
        Warning(
            f"TRUSTED_PROXY_COUNT={settings.TRUSTED_PROXY_COUNT} while the portal serves TLS itself "
            "(TLS_CERT_FILE, TLS_KEY_FILE): a client reaching it directly picks its own address with "
            "X-Forwarded-For, past the login lockout and the bad-token throttle",
            hint="set TRUSTED_PROXY_COUNT=0, or serve TLS at the proxy and leave TLS_CERT_FILE/TLS_KEY_FILE unset",
            id="accounts.W002",
        )
    ]
