from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.checks import demo_password
from accounts.models import Role
from accounts.roles import sync_roles
from audit.models import Source
from audit.services import record, snapshot

# Development only: the command refuses to run under PORTAL_ENV=production or on a database
# given by DATABASE_URL (a real one); `manage.py check --deploy` fails while one is left.
DEMO_PASSWORDS = {role.value: demo_password(role.value) for role in Role}


class Command(BaseCommand):
    help = "Create one demo user per role (viewer, operator, approver, admin). Development only."

    def handle(self, *args, **options) -> None:
        if settings.PRODUCTION:
            raise CommandError("demo users are never created under PORTAL_ENV=production")
        if not settings.EMBEDDED_POSTGRES:
            raise CommandError("demo users are only created on the embedded database (DATABASE_URL is set)")
        sync_roles(Group, Permission, ContentType)  # the roles they join (idempotent; a flushed database has none)
        for role, password in DEMO_PASSWORDS.items():
            with transaction.atomic():
                user, created = User.objects.get_or_create(username=role, defaults={"email": f"{role}@example.com"})
                if not created:
                    continue
                user.set_password(password)
                user.is_staff = user.is_superuser = role == Role.ADMIN
                user.save()
                user.groups.set([Group.objects.get(name=role)])
                record(
                    "manage.py create_demo_users",
                    "auth.user.create",
                    user,
                    after=snapshot(user, exclude=("password",)),
                    source=Source.COMMAND,
                )
        for role, password in DEMO_PASSWORDS.items():
            self.stdout.write(f"  {role:<9} password: {password}")
