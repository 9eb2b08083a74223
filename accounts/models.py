from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Capability(models.TextChoices):
    """What a role may do. Each is a Django permission `accounts.<value>`."""

    READ = "read", "Read entities, runs, logs, lineage and audit"
    OPERATE = "operate", "Trigger and cancel runs, refresh entities"
    REQUEST_MODE_CHANGE = "request_mode_change", "Request a mode change; break-glass rollback"
    APPROVE_MODE_CHANGE = "approve_mode_change", "Approve or reject others' mode changes"
    MANAGE_SCHEDULES = "manage_schedules", "Manage schedules and notification targets"
    ADMINISTER = "administer", "Manage users, roles and tokens; override the parity gate"


class Role(models.TextChoices):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"


ROLE_CAPABILITIES: dict[str, set[str]] = {
    Role.VIEWER: {Capability.READ},
    Role.OPERATOR: {
        Capability.READ,
        Capability.OPERATE,
        Capability.REQUEST_MODE_CHANGE,
        Capability.MANAGE_SCHEDULES,
    },
    Role.APPROVER: {Capability.READ, Capability.APPROVE_MODE_CHANGE},
    Role.ADMIN: set(Capability),
}


class CapabilityHolder(models.Model):
    """Table-less anchor for the capability permissions."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = list(Capability.choices)


def _digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 digest is stored (the token is 256 random bits, so a
    fast hash is enough); the plaintext is shown once, when issued."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name}, {self.user})"

    @classmethod
    def issue(cls, user, name: str, days: int) -> tuple[ApiToken, str]:
        plaintext = "tp_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=plaintext[:10],
            digest=_digest(plaintext),
            expires_at=timezone.now() + timedelta(days=days),
        )
        return token, plaintext

    @classmethod
    def find_usable(cls, plaintext: str) -> ApiToken | None:
        return cls.objects.usable().select_related("user").filter(digest=_digest(plaintext)).first()

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
