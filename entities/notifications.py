"""Mail about entities, sent from the queue (a slow or hung mail server never holds a request)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from accounts.models import Capability
from accounts.permissions import emails_of_users_who_can
from entities.models import ModeChange


def email_rollback(change_id: int) -> None:
    """The queue task that tells approvers about a rollback (EMAIL_TIMEOUT bounds the wait)."""
    change = ModeChange.objects.select_related("entity", "actor").get(pk=change_id)
    entity = change.entity
    actor = change.actor.get_username() if change.actor else "someone"
    send_mail(
        subject=f"[Transformation Portal] {entity.name} rolled back to rules by {actor}",
        message=(
            f"{actor} rolled {entity.name} back from {change.from_label} to rules at "
            f"{change.created_at:%Y-%m-%d %H:%M:%S %Z} (break-glass, no approval needed).\n\n"
            f"Reason: {change.reason}\n\n"
            f"{settings.PORTAL_BASE_URL}/entities/{entity.name}/\n"
        ),
        from_email=None,
        recipient_list=emails_of_users_who_can(Capability.APPROVE_MODE_CHANGE),
    )
