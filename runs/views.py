from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Capability
from accounts.permissions import can, require, requires
from audit.models import Source
from kernel.errors import RequestError, form_error
from runs.api import failures_first
from runs.artifacts import COMPILED_SQL, artifact_response, artifact_text, open_artifact, stored_names
from runs.filters import RunFilter
from runs.forms import NotificationTargetForm, TriggerRunForm
from runs.highlight import highlighted
from runs.jobs import retry_run
from runs.models import NodeResult, NotificationDelivery, NotificationTarget, Run, RunState, RunStep, Worker
from runs.notifications import create_target, delete_target, mask_url
from runs.services import cancel_run, rerun, trigger_run

TIMELINE_WIDTH = 800
TIMELINE_ROW = 16
TIMELINE_MAX_NODES = 400
# Runs with nothing to rerun from failure: they succeeded, or a cron slot ran nothing.
RETRY_REFUSED = frozenset({RunState.SUCCESS, RunState.SKIPPED})


@requires(Capability.READ)
def run_list(request: HttpRequest) -> HttpResponse:
    runs = RunFilter(request.GET, queryset=Run.objects.select_related("triggered_by"))
    queryset = runs.qs if runs.is_valid() else Run.objects.none()
    query = request.GET.copy()
    query.pop("page", None)
    ctx = {
        "filter": runs,
        "page": Paginator(queryset, 50).get_page(request.GET.get("page")),
        "query": query.urlencode(),
        "projects": Run.objects.order_by("project").values_list("project", flat=True).distinct(),
        "states": RunState.choices,
        "can_operate": can(request.user, Capability.OPERATE),
        "workers": Worker.objects.with_alive(),
    }
    return render(request, "runs/list.html", ctx)


def _timeline(nodes: list) -> dict | None:
    timed = [n for n in nodes if n.started_at and n.finished_at][:TIMELINE_MAX_NODES]
    if not timed:
        return None
    timed.sort(key=lambda n: (n.started_at, n.unique_id))
    t0 = min(n.started_at for n in timed)
    span = max((max(n.finished_at for n in timed) - t0).total_seconds(), 0.001)
    bars = []
    for row, node in enumerate(timed):
        start = (node.started_at - t0).total_seconds()
        length = max((node.finished_at - node.started_at).total_seconds(), 0)
        bars.append(
            {
                "node": node,
                "x": round(start / span * TIMELINE_WIDTH, 1),
                "width": round(max(length / span * TIMELINE_WIDTH, 2), 1),
                "y": row * TIMELINE_ROW,
                "start": round(start, 2),
                "length": round(length, 2),
            }
        )
    return {"bars": bars, "width": TIMELINE_WIDTH, "height": len(bars) * TIMELINE_ROW, "span": round(span, 2)}


def _steps_with_nodes(run: Run, nodes: list[NodeResult]) -> list[RunStep]:
    """A job run's steps, each with its node results (`step_nodes`, failures first)."""
    steps = list(run.steps.all())
    by_step: dict[int, list[NodeResult]] = {}
    for node in nodes:
        by_step.setdefault(node.step, []).append(node)
    for step in steps:
        step.step_nodes = by_step.get(step.index, [])
        step.duration_seconds = (
            (step.finished_at - step.started_at).total_seconds() if step.started_at and step.finished_at else None
        )
    return steps


@requires(Capability.READ)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("triggered_by", "rerun_of", "job", "environment"), pk=pk)
    nodes = list(failures_first(run.node_results.all()))
    steps = _steps_with_nodes(run, nodes)
    can_operate = can(request.user, Capability.OPERATE)
    ctx = {
        "run": run,
        "nodes": nodes,
        "steps": steps,
        "timeline": _timeline(nodes),
        "percent": round(100 * run.nodes_done / run.nodes_total) if run.nodes_total else (100 if run.is_final else 0),
        "can_cancel": can_operate and not run.is_final and run.cancel_requested_at is None,
        "can_rerun": can_operate and run.is_final,
        "can_retry": can_operate and run.is_final and run.kind == "dbt" and run.state not in RETRY_REFUSED,
        "artifacts": stored_names(run),
        "compiled_sql": COMPILED_SQL,
        "poll": {
            "log_url": f"/api/v1/runs/{run.pk}/log/",
            "nodes_url": f"/api/v1/runs/{run.pk}/nodes/",
            "run_url": f"/api/v1/runs/{run.pk}/",
            "step_lines": {step.log_first_line: step.index for step in steps if step.log_first_line is not None},
            "project": run.project,
            "final": run.is_final,
        },
    }
    return render(request, "runs/detail.html", ctx)


@requires(Capability.READ)
def run_artifact(request: HttpRequest, pk: int, name: str) -> FileResponse:
    return artifact_response(get_object_or_404(Run, pk=pk), name, request.GET.get("node", ""))


@requires(Capability.READ)
def run_artifact_page(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """A text artifact (compiled SQL, dbt's JSON, dbt.log) shown highlighted, with its
    download; large or binary ones with their download only."""
    run = get_object_or_404(Run, pk=pk)
    node = request.GET.get("node", "")
    artifact = open_artifact(run, name, node)
    with artifact.content:
        text, refusal = artifact_text(artifact)
    ctx = {
        "run": run,
        "name": name,
        "node": node,
        "artifact": artifact,
        "code": highlighted(text, artifact.filename) if text is not None else None,
        "refusal": refusal,
    }
    return render(request, "runs/artifact.html", ctx)


@requires(Capability.OPERATE)
def run_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = TriggerRunForm(request.POST)
        if form.is_valid():
            try:
                run = trigger_run(**form.cleaned_data, actor=request.user, source=Source.WEB)
            except RequestError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"Run #{run.pk} queued: {run.project} {run.title}")
                return redirect("run-detail", pk=run.pk)
    else:
        form = TriggerRunForm(
            initial={key: request.GET[key] for key in ("project", "command", "select") if key in request.GET}
        )
    return render(request, "runs/new.html", {"form": form}, status=400 if form.errors else 200)


@require_POST
@requires(Capability.OPERATE)
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    try:
        cancel_run(run, actor=request.user, source=Source.WEB)
    except RequestError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Cancel requested for run #{run.pk}.")
    return redirect("run-detail", pk=run.pk)


@require_POST
@requires(Capability.OPERATE)
def run_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=pk)
    try:
        new = rerun(run, actor=request.user, source=Source.WEB)
    except RequestError as exc:
        messages.error(request, f"Cannot re-run: {exc.message}")
        return redirect("run-detail", pk=run.pk)
    messages.success(request, f"Run #{new.pk} queued (re-run of #{run.pk}).")
    return redirect("run-detail", pk=new.pk)


@require_POST
@requires(Capability.OPERATE)
def run_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Rerun from failure (dbt retry: only the failed step's errored and skipped nodes, then
    the steps after it)."""
    run = get_object_or_404(Run.objects.select_related("job"), pk=pk)
    try:
        new = retry_run(run, actor=request.user, source=Source.WEB)
    except RequestError as exc:
        messages.error(request, f"Cannot retry from failure: {exc.message}")
        return redirect("run-detail", pk=run.pk)
    messages.success(request, f"Run #{new.pk} queued (retry from failure of #{run.pk}).")
    return redirect("run-detail", pk=new.pk)


# The session key holding a new target's secret until the page shows it, once.
SHOWN_ONCE_SESSION_KEY = "notification_target_secret"


@requires(Capability.READ)
def notification_list(request: HttpRequest) -> HttpResponse:
    manage = can(request.user, Capability.MANAGE_SCHEDULES)
    target_form = NotificationTargetForm(prefix="target")
    status = 200
    if request.method == "POST":
        require(request.user, Capability.MANAGE_SCHEDULES)
        target_form = NotificationTargetForm(request.POST, prefix="target")
        if target_form.is_valid():
            try:
                target = create_target(actor=request.user, source=Source.WEB, **target_form.cleaned_data)
            except RequestError as exc:
                form_error(target_form, exc)
            else:
                messages.success(request, "Notification target added.")
                request.session[SHOWN_ONCE_SESSION_KEY] = [target.pk, target.secret]
                return redirect("notification-list")
        status = 400
    ctx = {
        **_notifications_shown(manage),
        "target_form": target_form,
        "can_manage": manage,
        "new_secret": request.session.pop(SHOWN_ONCE_SESSION_KEY, None) if manage else None,
    }
    return render(request, "runs/notifications.html", ctx, status=status)


def _notifications_shown(manage: bool) -> dict[str, list]:
    """Targets and recent run deliveries (an SLA's are its own); webhook URLs (secrets for Slack and Teams) masked for
    whoever may not manage them."""
    targets = list(NotificationTarget.objects.select_related("job"))
    deliveries = list(NotificationDelivery.objects.filter(run__isnull=False).select_related("run")[:20])
    if not manage:
        for target in targets:
            target.webhook_url = mask_url(target.webhook_url)
        for delivery in deliveries:
            if delivery.channel == "webhook":
                delivery.destination = mask_url(delivery.destination)
    return {"targets": targets, "deliveries": deliveries}


@require_POST
@requires(Capability.MANAGE_SCHEDULES)
def notification_delete(request: HttpRequest, pk: int) -> HttpResponse:
    delete_target(get_object_or_404(NotificationTarget, pk=pk), actor=request.user, source=Source.WEB)
    messages.success(request, "Notification target removed.")
    return redirect("notification-list")
