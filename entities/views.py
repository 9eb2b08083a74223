from __future__ import annotations

import logging

import psycopg
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import Capability
from accounts.permissions import requires
from audit.models import Source
from entities import router, services
from entities.forms import DecisionForm, ModeRequestForm, RollbackForm
from entities.models import EntityType, ModeChangeRequest, RequestStatus
from entities.queries import entity_overview, next_step, refreshes, with_latest_report
from entities.refresh import trigger_refresh
from kernel.errors import RequestError, form_error
from lineage.projects import discover_projects

logger = logging.getLogger(__name__)


@requires(Capability.READ)
def home(request: HttpRequest) -> HttpResponse:
    entity_types, reachable = entity_overview()
    ctx = {"projects": discover_projects(), "entity_types": entity_types, "warehouse_unreachable": not reachable}
    return render(request, "home.html", ctx)


@requires(Capability.READ)
def entity_list(request: HttpRequest) -> HttpResponse:
    entity_types, reachable = entity_overview()
    return render(request, "entities/list.html", {"entity_types": entity_types, "warehouse_unreachable": not reachable})


def _detail(
    request: HttpRequest,
    entity: EntityType,
    *,
    request_form: ModeRequestForm | None = None,
    rollback_form: RollbackForm | None = None,
    status: int = 200,
) -> HttpResponse:
    reports = list(entity.parity_reports.all()[:10])
    for report in reports:
        report.passes = entity.parity_passes(report)
        report.column_rows = [
            (column, count, report.sample_keys.get("columns", {}).get(column, []))
            for column, count in sorted(report.column_differences.items())
        ]
    latest = reports[0] if reports else None
    mode_requests = list(entity.mode_requests.select_related("requested_by", "decided_by")[:30])
    for item in mode_requests:
        item.entity = entity
        item.gate_open = entity.gate_allows(item.mode, latest)
    try:
        generated = router.view_sql(entity.serving_view_spec).as_string()
    except router.RouterError as error:
        generated = f"-- {error}"
    try:
        live_view_sql, unreachable = services.serving_view_definition(entity), False
    except psycopg.Error as error:  # the page still renders when the warehouse is unreachable
        logger.warning("could not read the definition of %s: %s", entity.serving_view, error)
        live_view_sql, unreachable = None, True
    recent_refreshes = list(refreshes(entity).select_related("triggered_by").order_by("-queued_at", "-id")[:10])
    pending = [item for item in mode_requests if item.is_pending]
    ctx = {
        "entity": entity,
        "history": entity.mode_changes.select_related("actor", "request")[:50],
        "mode_requests": mode_requests,
        "reports": reports,
        "latest_report": latest,
        "refreshes": recent_refreshes,
        "next_step": next_step(
            entity,
            view_built=unreachable or live_view_sql is not None,
            active_refresh=recent_refreshes[0] if recent_refreshes and not recent_refreshes[0].is_final else None,
            latest=latest,
            pending=pending[-1] if pending else None,
        ),
        "view_sql": generated,
        "live_view_sql": live_view_sql,
        "warehouse_unreachable": unreachable,
        "request_form": request_form or ModeRequestForm(),
        "rollback_form": rollback_form or RollbackForm(),
        "decision_form": DecisionForm(),
    }
    return render(request, "entities/detail.html", ctx, status=status)


@requires(Capability.READ)
def entity_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _detail(request, get_object_or_404(EntityType, name=name))


@require_POST
@requires(Capability.OPERATE)
def entity_refresh(request: HttpRequest, name: str) -> HttpResponse:
    entity = get_object_or_404(EntityType, name=name)
    try:
        run = trigger_refresh(entity, actor=request.user, source=Source.WEB)
    except RequestError as error:
        messages.error(request, error.message)
        return redirect("entity-detail", name=entity.name)
    messages.success(request, f"Refresh of {entity.name} queued as run #{run.pk}.")
    return redirect("entity-detail", name=entity.name)


@require_POST
@requires(Capability.REQUEST_MODE_CHANGE)
def entity_request_mode(request: HttpRequest, name: str) -> HttpResponse:
    entity = get_object_or_404(EntityType, name=name)
    form = ModeRequestForm(request.POST)
    if form.is_valid():
        try:
            created = services.request_mode_change(
                entity,
                mode=form.cleaned_data["mode"],
                canary_percent=form.cleaned_data["canary_percent"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
                source=Source.WEB,
            )
        except RequestError as error:
            form_error(form, error)
        else:
            messages.success(request, f"Request #{created.pk} ({created.to_label}) is waiting for an approver.")
            return redirect("entity-detail", name=entity.name)
    return _detail(request, entity, request_form=form, status=400)


@require_POST
@requires(Capability.REQUEST_MODE_CHANGE)
def entity_rollback(request: HttpRequest, name: str) -> HttpResponse:
    entity = get_object_or_404(EntityType, name=name)
    form = RollbackForm(request.POST)
    if form.is_valid():
        try:
            services.rollback(entity, actor=request.user, reason=form.cleaned_data["reason"], source=Source.WEB)
        except RequestError as error:
            form_error(form, error)
        else:
            messages.success(request, f"{entity.name} is back on rules. Approvers have been emailed.")
            return redirect("entity-detail", name=entity.name)
    return _detail(request, entity, rollback_form=form, status=400)


@requires(Capability.APPROVE_MODE_CHANGE)
def approvals(request: HttpRequest) -> HttpResponse:
    pending = list(
        ModeChangeRequest.objects.pending().select_related("entity", "requested_by").order_by("requested_at", "id")
    )
    with_latest_report([item.entity for item in pending])
    for item in pending:
        item.own = item.requested_by_id == request.user.pk
        item.gate_open = item.entity.gate_allows(item.mode, item.entity.latest_report)
    decided = ModeChangeRequest.objects.exclude(status=RequestStatus.PENDING).select_related(
        "entity", "requested_by", "decided_by"
    )[:20]
    return render(
        request, "entities/approvals.html", {"pending": pending, "decided": decided, "decision_form": DecisionForm()}
    )


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("entity-approvals")


def _decide(request: HttpRequest, pk: int, verb: services.Verb) -> HttpResponse:
    get_object_or_404(ModeChangeRequest, pk=pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect(_back(request))
    try:
        decided = services.act_on_request(verb, pk, actor=request.user, **form.cleaned_data, source=Source.WEB)
    except RequestError as error:
        messages.error(request, error.message)
    else:
        now_on = f": {decided.entity.name} is now on {decided.to_label}" if verb == services.Verb.APPROVE else ""
        messages.success(request, f"Request #{pk} {decided.status}{now_on}.")
    return redirect(_back(request))


@require_POST
@requires(Capability.APPROVE_MODE_CHANGE)
def request_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.Verb.APPROVE)


@require_POST
@requires(Capability.APPROVE_MODE_CHANGE)
def request_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.Verb.REJECT)


@require_POST
@requires(Capability.REQUEST_MODE_CHANGE)
def request_withdraw(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, services.Verb.WITHDRAW)
