"""Health endpoints for load balancers, orchestrators and process supervisors (public: no
session, no token, a probe has neither), the Prometheus scrape (loopback or a token), and the
operations dashboard. All answer GET and HEAD only."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from accounts.models import Capability
from accounts.permissions import requires
from kernel.errors import ErrorCode, RequestError
from operations.dashboard import DEFAULT_WINDOW, WINDOWS, dashboard
from operations.metrics import exposition
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


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' scrape. A request with a bearer token is judged by the token alone (401 when
    it is not METRICS_TOKEN); one without, by its address (403 unless in METRICS_ALLOWED_IPS)."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    try:
        body = exposition()
    except RequestError as exc:
        if exc.code != ErrorCode.QUERY_TIMEOUT:
            raise
        return HttpResponse(exc.message, status=exc.status, content_type="text/plain")
    # Our names and labels are plain ASCII: the classic text format, which every Prometheus reads.
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        expected = settings.METRICS_TOKEN
        if expected and hmac.compare_digest(token.strip().encode(), expected.encode()):
            return None
        refused = HttpResponse("bad metrics token\n", status=401, content_type="text/plain")
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # a dual-stack socket
        address = address.ipv4_mapped
    if address is not None and any(address in network for network in settings.METRICS_ALLOWED_IPS):
        return None
    return HttpResponse(
        "metrics: not from an address in METRICS_ALLOWED_IPS; send Authorization: Bearer <METRICS_TOKEN>\n",
        status=403,
        content_type="text/plain",
    )
