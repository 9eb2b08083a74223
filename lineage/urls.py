from __future__ import annotations

from django.urls import path

import lineage.converters  # noqa: F401 - registers the <unique_id:…> converter
from lineage import views

urlpatterns = [
    path("", views.project_list, name="lineage-projects"),
    path("<str:project>/", views.project_detail, name="lineage-project"),
    path("<str:project>/upload/", views.upload_manifest, name="lineage-upload"),
    path("<str:project>/groups/", views.project_groups, name="lineage-groups"),
    path("<str:project>/explore/", views.explorer, name="lineage-explorer"),
    path("<str:project>/explore/graph.json", views.explorer_data, name="lineage-explorer-data"),
    path("<str:project>/explore/columns.json", views.explorer_columns, name="lineage-explorer-columns"),
    path("<str:project>/freshness/", views.project_freshness, name="lineage-freshness"),
    path("<str:project>/groups/nodes/", views.group_nodes, name="lineage-group-nodes"),
    path("<str:project>/nodes/<unique_id:unique_id>/", views.node_detail, name="lineage-node"),
]
