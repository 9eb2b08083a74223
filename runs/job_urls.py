from __future__ import annotations

from django.urls import path

from runs import job_views

urlpatterns = [
    path("", job_views.job_list, name="job-list"),
    path("new/", job_views.job_new, name="job-new"),
    path("<int:pk>/", job_views.job_detail, name="job-detail"),
    path("<int:pk>/run/", job_views.job_run, name="job-run"),
    path("<int:pk>/toggle/", job_views.job_toggle, name="job-toggle"),
    path("<int:pk>/delete/", job_views.job_delete, name="job-delete"),
    path("environments/", job_views.environment_list, name="environment-list"),
    path("environments/<int:pk>/", job_views.environment_edit, name="environment-edit"),
    path("environments/<int:pk>/delete/", job_views.environment_delete, name="environment-delete"),
]
