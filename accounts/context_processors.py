from __future__ import annotations

from accounts.models import Capability
from accounts.permissions import can


def capabilities(request) -> dict:
    """`caps.operate` etc. in every template, so navigation shows what the role may do."""
    user = getattr(request, "user", None)
    return {"caps": {c.value: can(user, c.value) for c in Capability} if user else {}}
