"""CI runs ("slim CI", docs/projects.md): a CI job (Job.triggers_on_pull_request) runs on a
pull request's head commit, into a schema of its own (dbt Cloud's `dbt_cloud_pr_<job>_<number>`), with dbt's
`--state` set to its deferring environment's latest successful manifest and `--defer`, so
`state:modified+` builds only what the pull request changes and reads the rest from
production. The run records what changed (Run.changes); its end goes back to the git host as a
signed webhook shaped like a commit status; closing the pull request drops its schemas."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task
from psycopg import sql

from dbtlib.commands import EXECUTING_COMMANDS
from dbtlib.manifest import Manifest
from dbtlib.state import compare
from lineage.models import GitProject
from runs.artifacts import open_artifact
from runs.environments import connection, default_environment, password
from runs.jobs import trigger_job
from runs.kinds import RunContext
from runs.models import Environment, Job, Run, RunState
from runs.notifications import post_webhook
from runs.services import create_run, validate_request

logger = logging.getLogger(__name__)

CLEANUP_KIND = "ci_cleanup"
STATUS_CONTEXT = "transformation-portal"
# A commit status's state (GitHub's and GitLab's words) for each final state of a run.
STATUS_OF_STATE: dict[str, str] = {RunState.SUCCESS: "success", RunState.FAILED: "failure"}


def pr_schema(job: Job, number: int) -> str:
    """The schema a CI job builds a pull request into (dbt adds `_<custom>` for custom schemas)."""
    return f"dbt_cloud_pr_{job.pk}_{number}"


def deferring_environment(run: Run) -> Environment:
    job = run.job
    if job is not None and job.deferring_environment_id:
        return job.deferring_environment
    return default_environment(run.project)


def comparison_run(run: Run) -> Run | None:
    """The deferring environment's latest successful run that built something (a command or
    a step that executes nodes) at its default branch's head, not a CI run, and stored a
    manifest: what production is."""
    branch = GitProject.objects.filter(name=run.project).values_list("branch", flat=True).first() or ""
    runs = Run.objects.filter(
        Q(command__in=EXECUTING_COMMANDS) | Q(steps__command__in=EXECUTING_COMMANDS),
        project=run.project,
        environment=deferring_environment(run),
        state=RunState.SUCCESS,
        pull_request__isnull=True,
        git_branch=branch,
        artifacts__name="manifest.json",
    )
    runs = runs.exclude(job__triggers_on_pull_request=True).exclude(pk=run.pk)
    return runs.order_by("-finished_at", "-id").first()


def write_comparison(run: Run, directory: Path) -> Run:
    """directory/manifest.json, the manifest a CI run compares with and defers to; the run it
    came from. RuntimeError saying what to do when there is none."""
    found = comparison_run(run)
    if found is None:
        environment = deferring_environment(run)
        raise RuntimeError(
            f"nothing to compare with: no successful run in environment {environment.name!r} stored a manifest "
            "(run the production job once, or set the CI job's deferring environment)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    artifact = open_artifact(found, "manifest.json")
    with artifact.content as source, (directory / "manifest.json").open("wb") as target:
        shutil.copyfileobj(source, target)
    return found


def record_changes(run: Run, manifest: Manifest, state_dir: Path, compared_with: Run) -> str:
    """What the pull request changes against production (Run.changes, which its page shows);
    the line the run's log says it in."""
    diff = compare(manifest, Manifest.from_path(state_dir / "manifest.json"))
    changes = {
        "compared_with": compared_with.pk,
        "new": list(diff.new),
        "modified": list(diff.modified),
        "removed": list(diff.removed),
        "downstream": len(diff.downstream),
    }
    Run.objects.filter(pk=run.pk).update(changes=changes)
    run.changes = changes
    return (
        f"against run #{compared_with.pk}: {len(diff.new)} new, {len(diff.modified)} modified, "
        f"{len(diff.removed)} removed, {len(diff.downstream)} downstream"
    )


def ci_jobs(project: str):
    return Job.objects.filter(project=project, triggers_on_pull_request=True).select_related("environment")


def trigger_ci(project: str, *, number: int, sha: str, branch: str, actor: Any, source: str) -> list[Run]:
    """A run of each CI job of the project on the pull request's head commit (all or none),
    each announced to the git host as a pending commit status once queued."""
    with transaction.atomic():
        runs = [
            trigger_job(
                job,
                actor=actor,
                source=source,
                cause=f"pull request #{number} at {sha[:12]}",
                git_sha=sha,
                git_branch=branch,
                pull_request=number,
                schema=pr_schema(job, number),
            )
            for job in ci_jobs(project)
        ]
        for run in runs:
            transaction.on_commit(lambda pk=run.pk: async_task(post_status, pk, group="notifications"))
    return runs


def close_pull_request(project: str, *, number: int, actor: Any, source: str) -> list[Run]:
    """A cleanup run per CI job that drops the schemas the pull request's runs built."""
    cause = f"pull request #{number} closed"
    return [
        _cleanup(project, pr_schema(job, number), job.environment, job=job, actor=actor, source=source, cause=cause)
        for job in ci_jobs(project)
    ]


def _cleanup(project: str, schema: str, environment: Environment | None, **create: Any) -> Run:
    request = validate_request(project=project, kind=CLEANUP_KIND, params={})
    return create_run({**request.fields(), "params": {"schema": schema}, "environment": environment}, **create)


def rerun_cleanup(run: Run, *, actor: Any, source: str) -> Run:
    """A cleanup again: the same schema, in the same environment."""
    schema, environment = run.params["schema"], run.environment
    return _cleanup(run.project, schema, environment, job=run.job, actor=actor, source=source, rerun_of=run)


def drop_pr_schemas(ctx: RunContext) -> None:
    """The cleanup kind's handler: drop the pull request's schema and its `<schema>_*` custom
    schemas in the job's environment."""
    run = ctx.run
    schema = run.params["schema"]
    environment = run.environment or default_environment(run.project)
    where = connection(environment)
    with psycopg.connect(
        host=where["host"],
        port=where["port"],
        user=where["user"],
        dbname=where["dbname"],
        password=password(environment) or None,
        application_name=ctx.application_name,
        autocommit=True,
    ) as conn:
        like = schema.replace("_", r"\_") + r"\_%"
        names = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = %s OR nspname LIKE %s ORDER BY 1", [schema, like]
            )
        ]
        for name in names:
            ctx.log(f"dropping schema {name}")
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))
    ctx.log(f"dropped {len(names)} schema(s)" if names else f"no schema {schema} or {schema}_* to drop")


def commit_status(run: Run) -> dict[str, Any]:
    """The run as a commit status: GitHub's fields (state, target_url, description, context)
    and the commit and pull request it is about."""
    if not run.is_final:
        state, description = "pending", f"{run.get_state_display()}: {run.reason}" if run.reason else "queued"
    else:
        state = STATUS_OF_STATE.get(run.state, "error")
        description = f"{run.get_state_display()}" + (f": {run.reason}" if run.reason else "")
    return {
        "state": state,
        "target_url": f"{settings.PORTAL_BASE_URL}/runs/{run.pk}/",
        "description": description[:140],
        "context": f"{STATUS_CONTEXT}/{run.job.name}" if run.job_id else STATUS_CONTEXT,
        "sha": run.git_sha,
        "pull_request": run.pull_request,
        "project": run.project,
        "run_id": run.pk,
    }


def post_status(run_id: int) -> bool:
    """Send a CI run's commit status to its project's status_url, signed (X-Portal-Signature)
    with the project's webhook secret. The outcome is logged; False when it was not delivered."""
    run = Run.objects.select_related("job").get(pk=run_id)
    project = GitProject.objects.filter(name=run.project).first()
    if project is None or not project.status_url or run.pull_request is None:
        return False
    ok, attempts, status, error = post_webhook(project.status_url, commit_status(run), secret=project.webhook_secret)
    if not ok:
        logger.warning("commit status of run %s not delivered after %s attempt(s): %s", run_id, attempts, error)
    return ok
