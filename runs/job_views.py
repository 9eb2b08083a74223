"""The jobs and environments pages: every change goes through runs.jobs and
runs.environments (validated, audited, the django-q2 row kept in step)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib import messages
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Capability
from accounts.permissions import can, require, requires
from audit.models import Source
from kernel.errors import RequestError, form_error
from runs.environments import create_environment, delete_environment, update_environment
from runs.forms import EnvironmentForm, JobForm
from runs.jobs import create_job, delete_job, job_steps, trigger_job, update_job, with_next_run
from runs.models import FINAL_STATES, Environment, Job, Run, RunState

SUCCESS_RATE_RUNS = 20
JOB_RUNS_SHOWN = 25
# Final runs that say how a job fares: a skipped cron slot ran nothing.
RATED_STATES = sorted(FINAL_STATES - {RunState.SKIPPED})


def _ranked(runs) -> Any:
    """Runs numbered 1, 2, … per job, newest first (a window: one query for every job)."""
    order = [F("queued_at").desc(), F("id").desc()]
    return runs.annotate(rank=Window(RowNumber(), partition_by=F("job_id"), order_by=order))


def _with_recent_runs(jobs: list[Job]) -> list[Job]:
    """Each job's `last_run` and `success_rate` (percent of its last 20 final runs, None
    without one) in two queries, however many jobs."""
    ids = [job.pk for job in jobs]
    latest = {run.job_id: run for run in _ranked(Run.objects.filter(job__in=ids)).filter(rank=1)}
    rated = _ranked(Run.objects.filter(job__in=ids, state__in=RATED_STATES)).filter(rank__lte=SUCCESS_RATE_RUNS)
    states = defaultdict(list)
    for job_id, state in rated.values_list("job_id", "state"):
        states[job_id].append(state)
    for job in jobs:
        job.last_run = latest.get(job.pk)
        finals = states[job.pk]
        job.rated_runs = len(finals)
        job.success_rate = round(100 * finals.count(RunState.SUCCESS) / len(finals)) if finals else None
        job.all_steps = job_steps(job)
    return jobs


@requires(Capability.READ)
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = _with_recent_runs(list(with_next_run(Job.objects.select_related("environment"))))
    ctx = {"jobs": jobs, "can_manage": can(request.user, Capability.MANAGE_SCHEDULES)}
    return render(request, "runs/jobs.html", ctx)


def _job_fields(form: JobForm) -> dict[str, Any]:
    return {name: value for name, value in form.cleaned_data.items() if name != "project"}


@requires(Capability.MANAGE_SCHEDULES)
def job_new(request: HttpRequest) -> HttpResponse:
    form = JobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = create_job(
                actor=request.user, source=Source.WEB, project=form.cleaned_data["project"], **_job_fields(form)
            )
        except RequestError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Job {job.name!r} created.")
            return redirect("job-detail", pk=job.pk)
    return render(request, "runs/job_new.html", {"form": form}, status=400 if form.errors else 200)


@requires(Capability.READ)
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's definition and runs; a POST (manager) saves the edit form through
    update_job, which audits the diff."""
    job = get_object_or_404(with_next_run(Job.objects.select_related("environment", "deferring_environment")), pk=pk)
    manage = can(request.user, Capability.MANAGE_SCHEDULES)
    form = JobForm(initial=JobForm.initial_of(job), job=job) if manage else None
    if request.method == "POST":
        require(request.user, Capability.MANAGE_SCHEDULES)
        form = JobForm(request.POST, job=job)
        if form.is_valid():
            try:
                update_job(job, actor=request.user, source=Source.WEB, **_job_fields(form))
            except RequestError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"Job {job.name!r} saved.")
                return redirect("job-detail", pk=job.pk)
        job.refresh_from_db()  # update_job refused: show what is stored
    ctx = {
        "job": job,
        "all_steps": job_steps(job),
        "runs": job.runs.select_related("triggered_by").order_by("-queued_at", "-id")[:JOB_RUNS_SHOWN],
        "form": form,
        "can_manage": manage,
        "can_operate": can(request.user, Capability.OPERATE),
    }
    return render(request, "runs/job_detail.html", ctx, status=400 if form is not None and form.errors else 200)


@require_POST
@requires(Capability.OPERATE)
def job_run(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job.objects.select_related("environment"), pk=pk)
    try:
        run = trigger_job(job, actor=request.user, source=Source.WEB)
    except RequestError as exc:
        messages.error(request, f"Cannot run {job.name!r}: {exc.message}")
        return redirect("job-detail", pk=job.pk)
    messages.success(request, f"Run #{run.pk} queued: job {job.name}")
    return redirect("run-detail", pk=run.pk)


@require_POST
@requires(Capability.MANAGE_SCHEDULES)
def job_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable or disable the cron trigger (audited as an update of schedule_enabled)."""
    job = get_object_or_404(Job, pk=pk)
    try:
        update_job(job, actor=request.user, source=Source.WEB, schedule_enabled=not job.schedule_enabled)
    except RequestError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Schedule of {job.name!r} {'enabled' if job.schedule_enabled else 'disabled'}.")
    return redirect("job-detail", pk=job.pk)


@require_POST
@requires(Capability.MANAGE_SCHEDULES)
def job_delete(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(Job, pk=pk)
    delete_job(job, actor=request.user, source=Source.WEB)
    messages.success(request, f"Job {job.name!r} deleted.")
    return redirect("job-list")


def _environment_fields(form: EnvironmentForm) -> dict[str, Any]:
    return {name: value for name, value in form.cleaned_data.items() if name != "project"}


@requires(Capability.READ)
def environment_list(request: HttpRequest) -> HttpResponse:
    """Every project's environments, and (manager) the form adding one."""
    manage = can(request.user, Capability.MANAGE_SCHEDULES)
    form = EnvironmentForm() if manage else None
    if request.method == "POST":
        require(request.user, Capability.MANAGE_SCHEDULES)
        form = EnvironmentForm(request.POST)
        if form.is_valid():
            project = form.cleaned_data["project"]
            try:
                create_environment(actor=request.user, source=Source.WEB, project=project, **_environment_fields(form))
            except RequestError as exc:
                form_error(form, exc)
            else:
                messages.success(request, f"Environment {form.cleaned_data['name']!r} of {project} created.")
                return redirect("environment-list")
    ctx = {"environments": Environment.objects.all(), "form": form, "can_manage": manage}
    return render(request, "runs/environments.html", ctx, status=400 if form is not None and form.errors else 200)


@requires(Capability.MANAGE_SCHEDULES)
def environment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=pk)
    initial = EnvironmentForm.initial_of(environment)
    form = EnvironmentForm(request.POST or None, initial=initial, environment=environment)
    if request.method == "POST" and form.is_valid():
        try:
            update_environment(environment, actor=request.user, source=Source.WEB, **_environment_fields(form))
        except RequestError as exc:
            form_error(form, exc)
        else:
            messages.success(request, f"Environment {environment.name!r} saved.")
            return redirect("environment-list")
        environment.refresh_from_db()
    ctx = {"environment": environment, "form": form}
    return render(request, "runs/environment_edit.html", ctx, status=400 if form.errors else 200)


@require_POST
@requires(Capability.MANAGE_SCHEDULES)
def environment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=pk)
    try:
        delete_environment(environment, actor=request.user, source=Source.WEB)
    except RequestError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Environment {environment.name!r} deleted.")
    return redirect("environment-list")
