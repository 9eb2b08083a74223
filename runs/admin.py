"""Read-only admin views of runs: every change to runs, jobs, environments and notification
targets goes through runs.services / runs.jobs / runs.notifications (which audit and keep the
django-q2 rows in step), from the portal's pages and API."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import Capability
from accounts.permissions import can
from kernel.security import mask_url
from runs.models import Environment, Job, NodeResult, NotificationDelivery, NotificationTarget, Run


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff who may read runs see them here (the portal's read capability, not model perms)."""

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_staff and can(request.user, Capability.READ)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """Only the list's own filters: Django takes any lookup on the model's fields from the
        query string, and the result count of `?secret__startswith=a` would read a write-only
        secret (or a masked webhook URL, an env var value) one character at a time."""
        filters = {
            entry if isinstance(entry, str) else entry[0] for entry in self.list_filter if not isinstance(entry, type)
        }
        return lookup.split("__")[0] in filters and super().lookup_allowed(lookup, value, request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class NodeResultInline(admin.TabularInline):
    model = NodeResult
    fields = ("unique_id", "status", "execution_time", "rows_affected", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "project", "kind", "command", "state", "source", "triggered_by", "queued_at", "finished_at")
    list_filter = ("state", "source", "kind", "project")
    search_fields = ("id", "project", "select", "reason")
    inlines = [NodeResultInline]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ("name", "project", "environment", "steps", "cron", "schedule_enabled")


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    """Below the operator role, env vars by name only (their values may be secrets)."""

    list_display = ("name", "project", "target_name", "host", "dbname", "schema", "is_default")
    readonly_fields = ("env_var_names",)

    @admin.display(description="env var names")
    def env_var_names(self, environment: Environment) -> str:
        return ", ".join(sorted(environment.env_vars or {})) or "—"

    def get_exclude(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        return () if can(request.user, Capability.OPERATE) else ("env_vars",)


class WebhookMaskingAdmin(ReadOnlyAdmin):
    """Webhook URLs (Slack's and Teams' secret is the path) masked for staff who may not manage
    notification targets, as on the portal's pages and API: each field named in `webhook_fields`
    is shown as its `masked_<field>` method instead, in the list and on the detail page."""

    webhook_fields: tuple[str, ...] = ()

    def _shown(self, request: HttpRequest, names) -> list[str]:
        masks = not can(request.user, Capability.MANAGE_SCHEDULES)
        masked = {f"masked_{name}" for name in self.webhook_fields}
        shown = [name for name in names if name not in masked]
        return [f"masked_{name}" if masks and name in self.webhook_fields else name for name in shown]

    def get_list_display(self, request: HttpRequest):
        return self._shown(request, super().get_list_display(request))

    def get_fields(self, request: HttpRequest, obj=None):
        return self._shown(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return (*super().get_readonly_fields(request, obj), *(f"masked_{name}" for name in self.webhook_fields))


@admin.register(NotificationTarget)
class NotificationTargetAdmin(WebhookMaskingAdmin):
    list_display = ("id", "project", "job", "emails", "webhook_url", "enabled")
    exclude = ("secret",)  # shown once, when the target is made; never again
    webhook_fields = ("webhook_url",)

    @admin.display(description="webhook url")
    def masked_webhook_url(self, target: NotificationTarget) -> str:
        return mask_url(target.webhook_url)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(WebhookMaskingAdmin):
    list_display = (
        "id", "run", "notice", "channel", "destination", "status", "attempts", "response_status", "created_at",
    )  # fmt: skip
    list_filter = ("notice", "channel", "status")
    webhook_fields = ("destination",)

    @admin.display(description="destination")
    def masked_destination(self, delivery: NotificationDelivery) -> str:
        return mask_url(delivery.destination) if delivery.channel == "webhook" else delivery.destination
