"""Request figures for GET /metrics: requests by method, view and status, and their latency.
They live in the process that answered the request, so:

- with PROMETHEUS_MULTIPROC_DIR set, prometheus-client's multiprocess mode: every process
  writes its figures to files in that directory and a scrape of any of them sums them all
  (the web processes of one host; `runportal` makes a fresh directory for its gunicorn
  workers at each start, as prometheus-client requires);
- without it, the answering process's own figures (`manage.py runserver`, the tests).

Views are named by their URL name, never the path, so the label set stays small.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Not in prometheus-client's default registry: a scrape builds its own (operations.metrics).
REQUESTS = Counter(
    "portal_http_requests",
    "HTTP requests answered, by method, view and status",
    ["method", "view", "status"],
    registry=None,
)
LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and view",
    ["method", "view"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def register(registry: CollectorRegistry) -> None:
    """Add the request figures to a scrape's registry: every process's of this host in
    multiprocess mode, else this process's."""
    if multiprocess():
        MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)


class RequestMetricsMiddleware:
    """First in MIDDLEWARE, so the time it records covers every other middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in METHODS else "other"
        view = request.resolver_match.view_name if request.resolver_match else "unresolved"
        LATENCY.labels(method, view).observe(time.perf_counter() - started)
        REQUESTS.labels(method, view, str(response.status_code)).inc()
        return response
