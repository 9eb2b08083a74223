"""The capability permissions and the four role groups, as they were when this migration
was written (a later change to the roles is a new migration, not an edit here)."""

from __future__ import annotations

from django.db import migrations

CAPABILITIES = {
    "read": "Read entities, runs, logs, lineage and audit",
    "operate": "Trigger and cancel runs, refresh entities",
    "request_mode_change": "Request a mode change; break-glass rollback",
    "approve_mode_change": "Approve or reject others' mode changes",
    "manage_schedules": "Manage schedules and notification targets",
    "administer": "Manage users, roles and tokens; override the parity gate",
}
ROLE_CAPABILITIES = {
    "viewer": ["read"],
    "operator": ["read", "operate", "request_mode_change", "manage_schedules"],
    "approver": ["read", "approve_mode_change"],
    "admin": list(CAPABILITIES),
}
# The admin role also manages users, roles and tokens in the Django admin.
ADMIN_MODEL_PERMISSIONS = {
    ("auth", "user"): ("add", "change", "delete", "view"),
    ("auth", "group"): ("add", "change", "delete", "view"),
    ("accounts", "apitoken"): ("change", "delete", "view"),
    ("audit", "auditevent"): ("view",),
}


def create_roles(apps, schema_editor) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")

    def permission(app_label: str, model: str, codename: str, name: str):
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        return Permission.objects.get_or_create(codename=codename, content_type=content_type, defaults={"name": name})[
            0
        ]

    capabilities = {code: permission("accounts", "capabilityholder", code, name) for code, name in CAPABILITIES.items()}
    admin_extra = [
        permission(app, model, f"{verb}_{model}", f"Can {verb} {model}")
        for (app, model), verbs in ADMIN_MODEL_PERMISSIONS.items()
        for verb in verbs
    ]
    for role, granted in ROLE_CAPABILITIES.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([capabilities[code] for code in granted] + (admin_extra if role == "admin" else []))


def delete_roles(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_CAPABILITIES)).delete()
    apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="accounts", content_type__model="capabilityholder", codename__in=list(CAPABILITIES)
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_roles, delete_roles)]
