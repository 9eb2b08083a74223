from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Capability
from accounts.permissions import requires
from kernel.db import bounded_page
from kernel.errors import RequestError
from search import services

PAGE_PER_KIND = 50


@requires(Capability.READ)
@bounded_page
def search_page(request: HttpRequest) -> HttpResponse:
    """Every result of ?q=, grouped by kind (groups in the order of their best result): the
    search box's "see all", and the search itself without JavaScript."""
    text = request.GET.get("q", "")
    error = ""
    try:
        text = services.check_query(text)
    except RequestError as exc:
        text, error = "", exc.message
    results = services.search(request.user, text, per_kind=PAGE_PER_KIND, limit=services.MAX_LIMIT)
    groups: dict[str, list[services.Result]] = {}
    for result in results:
        groups.setdefault(result.kind, []).append(result)
    ctx = {
        "q": text if not error else request.GET.get("q", "").replace("\x00", "")[: services.MAX_QUERY],
        "error": error,
        "groups": [
            {"kind": kind, "results": rows, "full": len(rows) >= PAGE_PER_KIND} for kind, rows in groups.items()
        ],
        "count": len(results),
    }
    return render(request, "search/results.html", ctx, status=400 if error else 200)
