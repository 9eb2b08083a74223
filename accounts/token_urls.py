from __future__ import annotations

from django.urls import path

from accounts import token_views

urlpatterns = [
    path("", token_views.token_list, name="token-list"),
    path("<int:pk>/revoke/", token_views.token_revoke, name="token-revoke"),
]
