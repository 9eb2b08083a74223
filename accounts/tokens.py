"""Issuing and revoking API tokens, audited in the same transaction, whichever door (the
tokens page, `manage.py issue_token`, the Django admin, a password change)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken
from audit.services import record

MAX_TOKEN_DAYS = 3650


def issue_token(owner, *, name: str, days: int, actor, source: str) -> tuple[ApiToken, str]:
    """A new token of `owner`, and its plaintext: shown once, never stored."""
    with transaction.atomic():
        token, plaintext = ApiToken.issue(owner, name, days)
        after = {"user": owner.get_username(), "name": name, "expires_at": token.expires_at}
        record(actor, "accounts.apitoken.issue", token, after=after, source=source)
    return token, plaintext


def revoke_token(token: ApiToken, *, actor, source: str, reason: str = "") -> bool:
    """Revoke the token (for good); False when it already was, and then nothing is audited."""
    with transaction.atomic():
        locked = ApiToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            return False
        locked.revoked_at = token.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        record(actor, "accounts.apitoken.revoke", locked, reason=reason, source=source)
    return True
