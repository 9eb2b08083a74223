from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest

from accounts.models import ApiToken
from accounts.tokens import revoke_token
from audit.admin import AuditedAdminMixin
from audit.models import Source

admin.site.site_header = "Transformation Portal administration"
admin.site.unregister(User)
admin.site.unregister(Group)

# django-q2's models run any function on the workers, outside four eyes and the audit:
# schedules and runs are managed on the portal's pages, so its admin is not offered at all.
for _model in [m for m in admin.site._registry if m._meta.app_label == "django_q"]:
    admin.site.unregister(_model)
# django-axes' lockout records: superusers delete one to unlock early, and that is audited.
for _model, _model_admin in [(m, a) for m, a in admin.site._registry.items() if m._meta.app_label == "axes"]:
    admin.site.unregister(_model)
    _audited = type(f"Audited{type(_model_admin).__name__}", (AuditedAdminMixin, type(_model_admin)), {})
    admin.site.register(_model, _audited)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    """The admin role manages accounts and their roles (groups); only a superuser grants
    superuser, staff or individual permissions, or touches a superuser's account."""

    audit_exclude = ("password",)
    superuser_only_fields = ("is_superuser", "is_staff", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly if request.user.is_superuser else readonly + self.superuser_only_fields

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    """A group's permissions (what a role may do) are changed by superusers only."""

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly if request.user.is_superuser else readonly + ("permissions",)


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
        return False  # tokens are issued on the tokens page or by `manage.py issue_token` (plaintext shown once)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        if obj is not None and obj.revoked_at is not None:
            return self.fields  # a revoked token stays revoked (a database trigger agrees)
        return self.readonly_fields

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        with transaction.atomic():
            for token in queryset.filter(revoked_at__isnull=True):
                revoke_token(token, actor=request.user, source=Source.ADMIN)
        messages.success(request, "Tokens revoked.")
