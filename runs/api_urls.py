from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from runs.api import ProjectParseView, RunArtifactView, RunViewSet, ScheduleViewSet

router = SimpleRouter()
router.register("runs", RunViewSet, basename="api-run")
router.register("schedules", ScheduleViewSet, basename="api-schedule")

urlpatterns = [
    *router.urls,
    path("runs/<int:pk>/artifacts/<str:name>", RunArtifactView.as_view(), name="api-run-artifact"),
    path("projects/<str:project>/parse/", ProjectParseView.as_view(), name="api-project-parse"),
]
