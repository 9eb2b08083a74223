from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import ApiToken
from audit.models import Source
from audit.services import record


class Command(BaseCommand):
    help = "Issue an API token for a user; the token is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=settings.API_TOKEN_DEFAULT_DAYS)
        parser.add_argument("--name", default="cli")

    def handle(self, *args, username: str, days: int, name: str, **options) -> None:
        if not 1 <= days <= 3650:
            raise CommandError("--days must be between 1 and 3650")
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}")
        with transaction.atomic():
            token, plaintext = ApiToken.issue(user, name, days)
            record(
                "manage.py issue_token",
                "accounts.apitoken.issue",
                token,
                after={"user": username, "name": name, "expires_at": token.expires_at},
                source=Source.COMMAND,
            )
        self.stdout.write(f"token {token.prefix}… for {username}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(plaintext)
