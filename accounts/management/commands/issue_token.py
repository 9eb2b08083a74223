from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import MAX_TOKEN_DAYS, issue_token
from audit.models import Source


class Command(BaseCommand):
    help = "Issue an API token for a user; the token is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=settings.API_TOKEN_DEFAULT_DAYS)
        parser.add_argument("--name", default="cli")

    def handle(self, *args, username: str, days: int, name: str, **options) -> None:
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_TOKEN_DAYS}")
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}")
        token, plaintext = issue_token(user, name=name, days=days, actor="manage.py issue_token", source=Source.COMMAND)
        self.stdout.write(f"token {token.prefix}… for {username}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
        self.stdout.write(plaintext)
