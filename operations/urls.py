from __future__ import annotations

from django.urls import path

from operations import sla_views

urlpatterns = [
    path("", sla_views.sla_list, name="sla-list"),
    path("<int:pk>/", sla_views.sla_detail, name="sla-detail"),
    path("<int:pk>/delete/", sla_views.sla_delete, name="sla-delete"),
]
