from __future__ import annotations

from accounts.models import ROLE_CAPABILITIES, Capability, Role

# The admin role also manages users, roles and tokens in the Django admin.
ADMIN_MODEL_PERMISSIONS = {
    ("auth", "user"): ("add", "change", "delete", "view"),
    ("auth", "group"): ("add", "change", "delete", "view"),
    ("accounts", "apitoken"): ("change", "delete", "view"),
    ("audit", "auditevent"): ("view",),
}


def sync_roles(group_model, permission_model, content_type_model) -> None:
    """Create the capability permissions and the role groups holding them (idempotent).
    Takes the models as arguments so the data migration can pass its historical ones."""

    def permission(app_label: str, model: str, codename: str, name: str):
        content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model)
        return permission_model.objects.get_or_create(
            codename=codename, content_type=content_type, defaults={"name": name}
        )[0]

    capabilities = {cap.value: permission("accounts", "capabilityholder", cap.value, cap.label) for cap in Capability}
    admin_extra = [
        permission(app, model, f"{verb}_{model}", f"Can {verb} {model}")
        for (app, model), verbs in ADMIN_MODEL_PERMISSIONS.items()
        for verb in verbs
    ]
    for role, granted in ROLE_CAPABILITIES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        extra = admin_extra if role == Role.ADMIN else []
        group.permissions.set([capabilities[c] for c in granted] + extra)
