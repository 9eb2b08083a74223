from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from audit.admin import AuditedAdminMixin
from audit.models import Source
from audit.services import record

admin.site.site_header = "Transformation Portal administration"
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    audit_exclude = ("password",)


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "expires_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    fields = ("user", "name", "prefix", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("user", "prefix", "created_at")
    audit_exclude = ("digest",)
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # tokens are issued with `manage.py issue_token` (plaintext shown once)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        with transaction.atomic():
            for token in queryset.select_for_update().filter(revoked_at__isnull=True):
                token.revoked_at = timezone.now()
                token.save(update_fields=["revoked_at"])
                record(request.user, "accounts.apitoken.revoke", token, source=Source.ADMIN)
        messages.success(request, "Tokens revoked.")
