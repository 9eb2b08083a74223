from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Capability
from accounts.permissions import requires
from lineage.projects import discover_projects


@requires(Capability.READ)
def home(request: HttpRequest) -> HttpResponse:
    ctx = {"projects": discover_projects(), "entity_types": []}
    return render(request, "home.html", ctx)
