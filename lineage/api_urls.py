from __future__ import annotations

from django.urls import path

import lineage.converters  # noqa: F401 - registers the <unique_id:…> converter
from lineage import api

urlpatterns = [
    path("projects/", api.ProjectListView.as_view(), name="api-projects"),
    path("projects/<str:project>/", api.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<str:project>/snapshots/", api.SnapshotListView.as_view(), name="api-project-snapshots"),
    path("projects/<str:project>/manifests/", api.ManifestUploadView.as_view(), name="api-project-manifests"),
    path("projects/<str:project>/nodes/", api.NodeListView.as_view(), name="api-project-nodes"),
    path(
        "projects/<str:project>/nodes/<unique_id:unique_id>/",
        api.NodeDetailView.as_view(),
        name="api-project-node",
    ),
    path(
        "projects/<str:project>/nodes/<unique_id:unique_id>/columns/",
        api.NodeColumnsView.as_view(),
        name="api-project-node-columns",
    ),
    path(
        "projects/<str:project>/lineage/<unique_id:unique_id>/",
        api.LineageView.as_view(),
        name="api-project-lineage",
    ),
    path("projects/<str:project>/select/", api.SelectView.as_view(), name="api-project-select"),
    path("projects/<str:project>/freshness/", api.FreshnessView.as_view(), name="api-project-freshness"),
]
