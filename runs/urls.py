from __future__ import annotations

from django.urls import path

from runs import views

urlpatterns = [
    path("", views.run_list, name="run-list"),
    path("new/", views.run_new, name="run-new"),
    path("<int:pk>/", views.run_detail, name="run-detail"),
    path("<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("<int:pk>/rerun/", views.run_rerun, name="run-rerun"),
    path("<int:pk>/retry/", views.run_retry, name="run-retry"),
    path("<int:pk>/artifacts/<str:name>", views.run_artifact, name="run-artifact"),
    path("<int:pk>/artifacts/<str:name>/view/", views.run_artifact_page, name="run-artifact-page"),
    path("notifications/", views.notification_list, name="notification-list"),
    path("notifications/<int:pk>/delete/", views.notification_delete, name="run-notification-delete"),
]
