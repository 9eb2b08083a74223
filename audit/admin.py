from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from audit.models import AuditEvent, Source
from audit.services import record, snapshot


class AuditedAdminMixin:
    """Records every add/change/delete made through the Django admin, inside the admin's
    own transaction. `audit_exclude` names fields never copied into the audit row."""

    audit_exclude: tuple[str, ...] = ()

    def _snapshot(self, obj: models.Model) -> dict[str, Any]:
        return snapshot(obj, exclude=self.audit_exclude)

    def _action(self, obj: models.Model, verb: str) -> str:
        return f"{obj._meta.label_lower}.{verb}"

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]  # a ModelAdmin mixin
        if obj is not None:
            request._audit_before = self._snapshot(obj)  # type: ignore[attr-defined]
        return obj

    def log_addition(self, request, obj, message):
        record(request.user, self._action(obj, "create"), obj, after=self._snapshot(obj), source=Source.ADMIN)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        record(
            request.user,
            self._action(obj, "update"),
            obj,
            before=getattr(request, "_audit_before", None),
            after=self._snapshot(obj),
            source=Source.ADMIN,
        )
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        for obj in queryset:
            record(request.user, self._action(obj, "delete"), obj, before=self._snapshot(obj), source=Source.ADMIN)
        return super().log_deletions(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "actor_username",
        "action",
        "target_type",
        "target_id",
        "target_label",
        "source",
    )
    list_filter = ("source", "action")
    search_fields = ("actor_username", "action", "target_id", "target_label", "reason")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
