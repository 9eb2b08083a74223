from __future__ import annotations

from django.urls import path

from entities import views

urlpatterns = [
    path("", views.entity_list, name="entity-list"),
    path("approvals/", views.approvals, name="entity-approvals"),
    path("requests/<int:pk>/approve/", views.request_approve, name="entity-request-approve"),
    path("requests/<int:pk>/reject/", views.request_reject, name="entity-request-reject"),
    path("requests/<int:pk>/withdraw/", views.request_withdraw, name="entity-request-withdraw"),
    path("<slug:name>/", views.entity_detail, name="entity-detail"),
    path("<slug:name>/refresh/", views.entity_refresh, name="entity-refresh"),
    path("<slug:name>/mode-requests/", views.entity_request_mode, name="entity-request-mode"),
    path("<slug:name>/rollback/", views.entity_rollback, name="entity-rollback"),
]
