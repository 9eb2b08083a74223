from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from accounts.models import Capability
from accounts.permissions import can
from audit.admin import AuditedAdminMixin
from audit.models import Source
from entities import services
from entities.models import EntityType, ModeChange, ModeChangeRequest, ParityReport
from kernel.errors import RequestError


class AdministerCapabilityMixin:
    """Entity models in the Django admin follow the capability layer: admins view and edit."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.ADMINISTER)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, Capability.ADMINISTER)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return can(request.user, Capability.ADMINISTER)


@admin.register(EntityType)
class EntityTypeAdmin(AdministerCapabilityMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Configuration only: the mode changes through requests and approvals (or a rollback)."""

    list_display = ("name", "mode", "canary_percent", "parity_threshold", "dbt_selector", "owner")
    fields = (
        "name", "description", "dbt_project", "dbt_selector", "key_column", "serving_view",
        "mode", "canary_percent", "mode_changed_at", "parity_threshold", "owner",
    )  # fmt: skip
    readonly_fields = ("name", "dbt_project", "key_column", "serving_view", "mode", "canary_percent", "mode_changed_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # an entity type needs a rule set and a dbt model: added by migration

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ModeChangeRequest)
class ModeChangeRequestAdmin(AdministerCapabilityMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Read-only; the actions decide through the same service as pages and API (never one's own)."""

    list_display = ("id", "entity", "from_mode", "mode", "canary_percent", "status", "requested_by", "decided_by")
    list_filter = ("status", "entity")
    actions = ["approve", "reject"]

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # decided only through the actions (the service), never edited

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def _decide(self, request: HttpRequest, queryset, approve: bool) -> None:
        for pk in queryset.values_list("pk", flat=True):
            try:
                if approve:
                    services.approve_request(pk, actor=request.user, comment="Django admin", source=Source.ADMIN)
                else:
                    services.reject_request(pk, actor=request.user, comment="Django admin", source=Source.ADMIN)
            except (RequestError, PermissionDenied) as error:  # PermissionDenied: the actor's role
                self.message_user(request, f"Request #{pk}: {error}", level=messages.ERROR)
            else:
                self.message_user(request, f"Request #{pk} {'approved' if approve else 'rejected'}.")

    @admin.action(description="Approve selected requests (not your own)")
    def approve(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject selected requests (not your own)")
    def reject(self, request: HttpRequest, queryset) -> None:
        self._decide(request, queryset, approve=False)


class _ReadOnlyAdmin(AdministerCapabilityMixin, admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ModeChange)
class ModeChangeAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "entity", "kind", "from_mode", "to_mode", "to_canary_percent", "actor")
    list_filter = ("entity", "kind")


@admin.register(ParityReport)
class ParityReportAdmin(_ReadOnlyAdmin):
    list_display = ("id", "entity", "created_at", "matching_rows", "only_in_rules", "only_in_dbt", "mismatched_rows")
    list_filter = ("entity",)
