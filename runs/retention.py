"""Retention of finished runs' bulk (issue 11, F7): the run directory under RUNS_DIR, the
stored artifacts (files and index rows), log chunks, node results and notification
deliveries of runs finished more than RUN_RETENTION_DAYS ago are deleted; the run row and
the audit trail stay. Daily through django-q2 (schedule `runs-prune`, migration 0008) and by
hand with `manage.py prune_runs`.

Also the free-space guard: below RUNS_MIN_FREE_MB free on RUNS_DIR's filesystem no new run
is accepted (a full disk beside the embedded database takes the portal down with it).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import Source
from audit.services import record
from kernel.errors import ErrorCode, RequestError
from lineage.projects import git_cache
from runs.artifacts import delete_artifacts
from runs.models import FINAL_STATES, NodeResult, NotificationDelivery, Run, RunLogChunk

# Below this, a dbt error is put down to the full disk (dbt cannot even write its log).
FULL_BELOW_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Pruned:
    days: int
    runs: int  # finished runs older than the cutoff whose bulk was looked at
    directories: int
    artifacts: int  # files deleted from the artifact storage
    log_chunks: int
    node_results: int
    deliveries: int


def prune_runs(*, days: int | None = None, actor: Any = "retention", source: str = Source.SCHEDULE) -> Pruned:
    """Delete the bulk of runs finished more than `days` (RUN_RETENTION_DAYS) ago; one
    audit row says what went."""
    days = settings.RUN_RETENTION_DAYS if days is None else days
    if days < 1:
        raise RequestError("days must be at least 1", field="days")
    cutoff = timezone.now() - timedelta(days=days)
    old = list(Run.objects.filter(state__in=FINAL_STATES, finished_at__lt=cutoff).values_list("pk", flat=True))
    directories = 0
    for run_id in old:
        path = Path(settings.RUNS_DIR) / str(run_id)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            directories += 1
    artifacts = delete_artifacts(old)
    with transaction.atomic():
        pruned = Pruned(
            days=days,
            runs=len(old),
            directories=directories,
            artifacts=artifacts,
            log_chunks=RunLogChunk.objects.filter(run_id__in=old).delete()[0],
            node_results=NodeResult.objects.filter(run_id__in=old).delete()[0],
            deliveries=NotificationDelivery.objects.filter(run_id__in=old).delete()[0],
        )
        record(actor, "runs.pruned", None, after=asdict(pruned), source=source)
    return pruned


# A git commit's checkout and parse state unused this long go (each host prunes its own,
# at most once an hour per process: web hosts when they check a new run, workers after one).
GIT_CHECKOUT_DAYS = 7
GIT_PRUNE_EVERY_SECONDS = 3600
_git_pruned_at: float | None = None


def prune_git_cache() -> int:
    """Remove this host's checkouts and per-commit parse states unused for GIT_CHECKOUT_DAYS,
    never those of active runs; how many checkouts went (0 when pruned within the hour)."""
    global _git_pruned_at
    if _git_pruned_at is not None and time.monotonic() - _git_pruned_at < GIT_PRUNE_EVERY_SECONDS:
        return 0
    _git_pruned_at = time.monotonic()
    keep = set(Run.objects.active().exclude(git_sha="").values_list("git_sha", flat=True))
    seconds = GIT_CHECKOUT_DAYS * 24 * 3600
    cutoff = timezone.now().timestamp() - seconds
    for state in (Path(settings.RUNS_DIR) / "_projects").glob("*@*"):
        if state.name.rpartition("@")[2] not in keep and state.stat().st_mtime < cutoff:
            shutil.rmtree(state, ignore_errors=True)
    return git_cache().prune(keep=keep, older_than=seconds)


def scheduled_prune() -> dict[str, int]:
    """The django-q2 task (daily)."""
    return asdict(prune_runs())


def free_megabytes(path: Path) -> int:
    """Free space (MB) of the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free // (1024 * 1024)


def disk_full_reason(path: Path) -> str:
    """The reason of a run whose dbt failed on a full disk ("" when the disk is not full)."""
    free = shutil.disk_usage(path).free if Path(path).exists() else None
    if free is None or free >= FULL_BELOW_BYTES:
        return ""
    return f"no space left on the disk of RUNS_DIR: {settings.RUNS_DIR} has {free // 1024} KB free"


def check_free_space() -> None:
    """RequestError (DISK_FULL, 507) when RUNS_DIR's filesystem is below RUNS_MIN_FREE_MB."""
    minimum = settings.RUNS_MIN_FREE_MB
    free = free_megabytes(settings.RUNS_DIR)
    if free < minimum:
        raise RequestError(
            f"not enough disk space for a new run: {settings.RUNS_DIR} has {free} MB free, "
            f"below RUNS_MIN_FREE_MB={minimum}; prune old runs (manage.py prune_runs) or free space",
            code=ErrorCode.DISK_FULL,
        )
