"""Health endpoints for load balancers, orchestrators and process supervisors. Both are
public (no session, no token: a probe has neither) and answer GET and HEAD only."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from operations.readiness import run_checks


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
