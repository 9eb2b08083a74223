"""The one permission layer: pages, API, admin actions and commands all ask `can()`."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth import get_user_model
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

from accounts.models import Capability


def can(user, capability: str) -> bool:
    return bool(user and user.is_active and user.has_perm(f"accounts.{capability}"))


def emails_of_users_who_can(capability: str) -> list[str]:
    """The email addresses of the active users who have the capability (by role or directly)."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    users = users.filter(
        Q(is_superuser=True)
        | Q(groups__permissions__codename=capability, groups__permissions__content_type__app_label="accounts")
        | Q(user_permissions__codename=capability, user_permissions__content_type__app_label="accounts")
    )
    return sorted(set(users.values_list("email", flat=True)))


def require(user, capability: str) -> None:
    if not can(user, capability):
        raise PermissionDenied(f"Your role may not do this ({Capability(capability).label.lower()}).")


def requires(capability: str) -> Callable:
    """Page-view decorator: log in first, then the capability, else 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            require(request.user, capability)
            return view(request, *args, **kwargs)

        wrapped.required_capability = capability  # type: ignore[attr-defined]
        return wrapped

    return decorator


class DenyAll(BasePermission):
    """The API default: a view that does not declare its permission serves nobody."""

    def has_permission(self, request, view) -> bool:
        return False


def Requires(capability: str) -> type[BasePermission]:  # noqa: N802 - reads as a class
    """DRF permission class for one capability, e.g. permission_classes = [Requires(READ)]."""

    class _Requires(BasePermission):
        message = f"Your role may not do this ({Capability(capability).label.lower()})."
        required_capability = capability

        def has_permission(self, request, view) -> bool:
            return can(request.user, capability)

    _Requires.__name__ = f"Requires_{capability}"
    return _Requires
