"""The only module that sees every app: it mounts each app's pages and API."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from dbt_cloud import urls as dbt_cloud_urls
from entities import views as entity_views
from operations import views as operations_views
from runs import git_hooks
from transformation_portal.api_errors import ApiNotFoundView

api_v1: list[URLPattern | URLResolver] = [
    path("", include("accounts.api_urls")),
    path("", include("lineage.api_urls")),
    path("", include("runs.api_urls")),
    path("", include("entities.api_urls")),
    path("", include("operations.api_urls")),
    path("", include("search.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI with its init script at docs/?script= (no inline script under the CSP).
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    # Last: any other path under /api/v1/ (newlines included) is a JSON 404, e.g. /runs/0.5/.
    re_path(r"^[\s\S]*$", ApiNotFoundView.as_view(), name="api-not-found"),
]

urlpatterns = [
    path("", entity_views.home, name="home"),
    # Public probes (no login): liveness and readiness of this web process.
    path("healthz", operations_views.healthz, name="healthz"),
    path("readyz", operations_views.readyz, name="readyz"),
    path("dashboard/", operations_views.dashboard_page, name="dashboard"),
    # Prometheus' scrape: METRICS_ALLOWED_IPS or a METRICS_TOKEN bearer token.
    path("metrics", operations_views.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", include("accounts.urls")),
    path("account/tokens/", include("accounts.token_urls")),
    path("lineage/", include("lineage.urls")),
    path("runs/", include("runs.urls")),
    path("jobs/", include("runs.job_urls")),
    path("entities/", include("entities.urls")),
    path("slas/", include("operations.urls")),
    path("search/", include("search.urls")),
    path("admin/", admin.site.urls),
    # The git hosts' webhooks: no login, each delivery verified by the project's webhook secret.
    path("hooks/git/<str:project>/github/", git_hooks.github_hook, name="git-hook-github"),
    path("hooks/git/<str:project>/gitlab/", git_hooks.gitlab_hook, name="git-hook-gitlab"),
    path("api/v1/", include(api_v1)),
    # dbt Cloud's Administrative API (the subset its Airflow provider uses), in its own envelope.
    path("api/v2/", include(dbt_cloud_urls.v2)),
    path("api/v3/", include(dbt_cloud_urls.v3)),
]
