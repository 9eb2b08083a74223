"""Health endpoints for load balancers, orchestrators and process supervisors (public: no
session, no token, a probe has neither; GET and HEAD only), and the operations dashboard."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from accounts.models import Capability
from accounts.permissions import requires
from operations.dashboard import DEFAULT_WINDOW, WINDOWS, dashboard
from operations.readiness import run_checks
from operations.slas import count_by_status, status_summary


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process serves requests. Touches no database, so a database outage
    never makes a supervisor restart every web process."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency check passes, 503 naming the failing ones."""
    checks = run_checks()
    ok = all(result["ok"] for result in checks.values())
    return JsonResponse({"status": "ok" if ok else "failing", "checks": checks}, status=200 if ok else 503)


@requires(Capability.READ)
@require_safe
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """/dashboard/?window=24h|7d|30d: success, recovery, durations, queue wait, failing tests,
    slowest models, SLAs, freshness and entity modes at a glance."""
    window = WINDOWS.get(request.GET.get("window", ""), WINDOWS[DEFAULT_WINDOW])
    statuses = status_summary()
    ctx = {
        "window": window,
        "windows": WINDOWS.values(),
        **dashboard(window),
        "sla_statuses": statuses,
        "sla_counts": count_by_status(statuses),
    }
    return render(request, "operations/dashboard.html", ctx)
