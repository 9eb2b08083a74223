"""Retention and disk space (issue 11, F7): old runs' bulk is pruned (daily and by hand,
audited), new runs are refused below RUNS_MIN_FREE_MB, and a run whose dbt meets a full
RUNS_DIR ends `error` naming the disk while the portal keeps serving."""

from __future__ import annotations

import errno
import subprocess
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEvent
from runs.artifacts import artifact_storage
from runs.models import NodeResult, NotificationDelivery, Run, RunArtifact, RunLogChunk, RunState
from runs.retention import scheduled_prune
from runs.services import trigger_run
from runs.worker import execute_run


def finished_run(days_ago: int, runs_dir) -> Run:
    finished = timezone.now() - timedelta(days=days_ago)
    run = Run.objects.create(
        project="sleepy", command="run", timeout_seconds=60, source="web", state=RunState.SUCCESS, finished_at=finished
    )
    RunLogChunk.objects.create(run=run, first_line=0, line_count=1, text="a line")
    NodeResult.objects.create(run=run, unique_id="model.sleepy.fast", status="success")
    NotificationDelivery.objects.create(run=run, channel="email", destination="ops@example.com", status="sent")
    (runs_dir / str(run.pk) / "target").mkdir(parents=True)
    (runs_dir / str(run.pk) / "target" / "manifest.json").write_text("{}")
    key = artifact_storage().save(f"runs/{run.pk}/1/manifest.json", ContentFile(b"{}"))
    RunArtifact.objects.create(run=run, invocation=1, name="manifest.json", key=key, size=2)
    return run


def bulk_of(run: Run, runs_dir) -> tuple[bool, bool, int, int, int]:
    return (
        (runs_dir / str(run.pk)).exists(),
        artifact_storage().exists(f"runs/{run.pk}/1/manifest.json") and run.artifacts.exists(),
        run.log_chunks.count(),
        run.node_results.count(),
        run.notifications.count(),
    )


def test_prune_deletes_old_runs_bulk_keeps_rows_and_audits(db, settings, tmp_path, capsys, migrated_rows):
    settings.RUNS_DIR, settings.RUN_RETENTION_DAYS = tmp_path, 30
    old, recent = finished_run(31, tmp_path), finished_run(2, tmp_path)
    call_command("prune_runs")
    assert (
        "1 runs, 1 directories, 1 stored artifacts, 1 log chunks, 1 node results, 1 deliveries"
        in capsys.readouterr().out
    )
    assert bulk_of(old, tmp_path) == (False, False, 0, 0, 0)
    assert bulk_of(recent, tmp_path) == (True, True, 1, 1, 1)
    assert Run.objects.filter(pk=old.pk, state=RunState.SUCCESS).exists()
    event = AuditEvent.objects.get(action="runs.pruned")
    assert (
        event.source == "command"
        and event.after["log_chunks"] == event.after["artifacts"] == 1
        and "prune_runs" in event.actor_username
    )
    scheduled_prune()  # the daily task: nothing left to prune, still one audit row
    assert AuditEvent.objects.filter(action="runs.pruned", source="schedule").count() == 1
    assert Schedule.objects.get(name="runs-prune").func == "runs.retention.scheduled_prune"


def test_prune_with_bad_days_is_refused_and_changes_nothing(db, settings, tmp_path):
    settings.RUNS_DIR = tmp_path
    old = finished_run(400, tmp_path)
    with pytest.raises(Exception, match="days must be at least 1"):
        call_command("prune_runs", "--days", "0")
    assert (
        bulk_of(old, tmp_path) == (True, True, 1, 1, 1) and not AuditEvent.objects.filter(action="runs.pruned").exists()
    )


@pytest.fixture
def small_runs_dir(tmp_path, settings):
    """RUNS_DIR on a 2 MB tmpfs (needs root: CI runs as root)."""
    mount = tmp_path / "runs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for RUNS_DIR (needs root): {done.stderr.decode().strip()}")
    settings.RUNS_DIR = mount
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(directory) -> None:
    with open(directory / "ballast", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_trigger_below_min_free_space_is_507_and_creates_no_run(
    db, dbt_projects_dir, small_runs_dir, settings, api_client, operator
):
    settings.RUNS_MIN_FREE_MB = 1
    fill(small_runs_dir)
    api_client.force_authenticate(operator)
    response = api_client.post("/api/v1/runs/", {"project": "sleepy", "command": "run"}, format="json")
    assert response.status_code == 507, response.content
    body = response.json()
    assert body["code"] == "disk_full" and str(small_runs_dir) in body["detail"] and "0 MB free" in body["detail"]
    assert not Run.objects.exists()


def test_run_meeting_a_full_runs_dir_ends_error_naming_the_disk(
    transactional_db, dbt_projects_dir, warehouse_conninfo, small_runs_dir, settings, operator, client
):
    settings.RUNS_MIN_FREE_MB = 0
    run = trigger_run(project="envprobe", command="run", actor=operator, source="command", enqueue=False)
    fill(small_runs_dir)
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.state == RunState.ERROR
    assert str(small_runs_dir) in run.reason and "no space left" in run.reason.lower(), run.reason
    client.force_login(operator)
    assert client.get(f"/runs/{run.pk}/").status_code == 200
    assert client.get("/runs/").status_code == 200
