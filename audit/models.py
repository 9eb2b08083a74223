from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Source(models.TextChoices):
    """The door a request came through; audit rows and runs (`Run.source`) both record it."""

    WEB = "web", "Web page"
    API = "api", "REST API"
    ADMIN = "admin", "Django admin"
    COMMAND = "command", "Management command"
    SCHEDULE = "schedule", "Schedule"
    WORKER = "worker", "Queue worker"
    WEBHOOK = "webhook", "Git webhook"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """One change, append-only (a database trigger refuses UPDATE/DELETE/TRUNCATE) and
    hash-chained: hash = sha256(prev_hash ‖ canonical JSON of the row)."""

    created_at = models.DateTimeField(db_index=True)
    # No FK constraint: the table is append-only, so deleting a user must not touch it.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    target_label = models.CharField(
        max_length=200, blank=True, help_text="the target's name (str()) when the event was recorded"
    )
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_type}:{self.target_id} by {self.actor_username or '-'}"

    @property
    def target(self) -> str:
        return f"{self.target_type}:{self.target_id}" if self.target_type else ""
