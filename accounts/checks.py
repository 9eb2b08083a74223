"""`manage.py check --deploy`: fails while any active account still opens with a demo
password (`<name>-demo`, what create_demo_users sets on a development machine). One
password hash per active account; the check never writes (no rehash on a match)."""

from __future__ import annotations

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
