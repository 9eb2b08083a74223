from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

import lineage.converters  # noqa: F401 - registers the <unique_id:…> converter
from runs.api import (
    EnvironmentViewSet,
    JobViewSet,
    NodeHistoryView,
    NotificationTargetViewSet,
    ProjectParseView,
    RunArtifactView,
    RunViewSet,
    WorkerListView,
)

router = SimpleRouter()
router.register("runs", RunViewSet, basename="api-run")
router.register("jobs", JobViewSet, basename="api-job")
router.register("environments", EnvironmentViewSet, basename="api-environment")
router.register("notification-targets", NotificationTargetViewSet, basename="api-notification-target")

urlpatterns = [
    *router.urls,
    path("runs/<int:pk>/artifacts/<str:name>", RunArtifactView.as_view(), name="api-run-artifact"),
    path("workers/", WorkerListView.as_view(), name="api-worker-list"),
    path("projects/<str:project>/parse/", ProjectParseView.as_view(), name="api-project-parse"),
    path(
        "projects/<str:project>/nodes/<unique_id:unique_id>/history/",
        NodeHistoryView.as_view(),
        name="api-node-history",
    ),
]
