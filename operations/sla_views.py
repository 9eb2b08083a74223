"""The SLA pages: the list with each SLA's status and recent misses, the create form, the
edit form and delete. Every change goes through operations.slas (validated, audited)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Capability
from accounts.permissions import can, require, requires
from audit.models import Source
from kernel.errors import RequestError, form_error
from operations.forms import SlaForm
from operations.models import Sla, SlaMiss
from operations.slas import create_sla, delete_sla, status_summary, update_sla

MISSES_SHOWN = 50


@requires(Capability.READ)
def sla_list(request: HttpRequest) -> HttpResponse:
    """Every SLA with its status now; a POST (manager) creates one."""
    manage = can(request.user, Capability.MANAGE_SCHEDULES)
    form = SlaForm() if manage else None
    if request.method == "POST":
        require(request.user, Capability.MANAGE_SCHEDULES)
        form = SlaForm(request.POST)
        if form.is_valid():
            try:
                sla = create_sla(actor=request.user, source=Source.WEB, **form.service_fields())
            except RequestError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"SLA {sla.name!r} created.")
                return redirect("sla-list")
    ctx = {
        "statuses": status_summary(),
        "misses": SlaMiss.objects.select_related("sla")[:MISSES_SHOWN],
        "form": form,
        "can_manage": manage,
    }
    return render(request, "operations/slas.html", ctx, status=400 if form is not None and form.errors else 200)


@requires(Capability.READ)
def sla_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One SLA, its misses; a POST (manager) saves the edit form through update_sla."""
    sla = get_object_or_404(Sla.objects.select_related("job"), pk=pk)
    manage = can(request.user, Capability.MANAGE_SCHEDULES)
    form = SlaForm(initial=SlaForm.initial_of(sla)) if manage else None
    if request.method == "POST":
        require(request.user, Capability.MANAGE_SCHEDULES)
        form = SlaForm(request.POST)
        if form.is_valid():
            try:
                update_sla(sla, actor=request.user, source=Source.WEB, **form.service_fields())
            except RequestError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"SLA {sla.name!r} saved.")
                return redirect("sla-detail", pk=sla.pk)
        sla.refresh_from_db()
    ctx = {"sla": sla, "misses": sla.misses.select_related("run", "recovered_by")[:MISSES_SHOWN], "form": form}
    return render(request, "operations/sla_detail.html", ctx, status=400 if form is not None and form.errors else 200)


@require_POST
@requires(Capability.MANAGE_SCHEDULES)
def sla_delete(request: HttpRequest, pk: int) -> HttpResponse:
    sla = get_object_or_404(Sla, pk=pk)
    delete_sla(sla, actor=request.user, source=Source.WEB)
    messages.success(request, f"SLA {sla.name!r} deleted.")
    return redirect("sla-list")
