"""The queue task that executes one run in a django-q2 worker: claim, heartbeat, the
project+target write lock, the dbt invocations it drives, and the final state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from lineage.projects import get_project
from runs.dbt.artifacts import ArtifactError, NodeOutcome
from runs.dbt.commands import WRITE_COMMANDS
from runs.dbt.environment import dbt_environment
from runs.dbt.invocation import DbtInvocation
from runs.dbt.launcher import DbtExit, Launcher, stop_group
from runs.dbt.manifest import Manifest, ManifestError
from runs.kinds import RunContext, RunFailed, RunInterrupted, get_kind
from runs.locks import ProjectWriteLock
from runs.models import FAILED_NODE_STATUSES, NodeResult, Run, RunState
from runs.notifications import enqueue_notifications
from runs.progress import LogWriter, NodeProgress
from runs.retention import disk_full_reason
from runs.services import project_state_dir, run_dir

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
_launcher = Launcher()


def warm_up(**_signal_kwargs) -> None:
    """django-q2 post_spawn: start this worker's dbt launcher so the first run is warm."""
    global WORKER_ID
    WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
    _launcher.start()


def application_name(run_id: int) -> str:
    return f"portal-run-{run_id}"


def terminate_backends(run_id: int) -> int:
    """Terminate warehouse backends still carrying the run's application_name."""
    name = application_name(run_id)
    with psycopg.connect(settings.WAREHOUSE_CONNINFO, autocommit=True, connect_timeout=10) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()", [name]
            )
        ]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE application_name = %s", [name]).fetchone():
                break
            time.sleep(0.1)
    return len(pids)


class Heartbeat(threading.Thread):
    """Marks the run alive every RUN_HEARTBEAT_SECONDS while this worker owns it, whatever
    the main thread is busy with (a kind handler may compute for minutes without logging).
    Its own thread, so its own database connection."""

    def __init__(self, run_id: int) -> None:
        super().__init__(name=f"heartbeat-run-{run_id}", daemon=True)
        self.run_id = run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.RUN_HEARTBEAT_SECONDS):
                Run.objects.filter(pk=self.run_id, state__in=[RunState.STARTING, RunState.RUNNING]).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # noqa: BLE001 - a missed beat is the reaper's business
            logger.exception("heartbeat of run %s failed", self.run_id)
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


class RunExecution:
    def __init__(self, run: Run, echo: Callable[[str], None] | None = None) -> None:
        self.run = run
        self.log = LogWriter(run, echo)
        self.deadline = time.monotonic() + run.timeout_seconds
        self.interrupted: str | None = None
        self.last_check = 0.0
        self.invocations = 0
        self.write_lock = ProjectWriteLock(run, self.log)

    # --- cancel, timeout, heartbeat ---------------------------------------------------
    def check(self) -> str | None:
        """Cancelled or timed out? Cheap enough to call in loops."""
        now = time.monotonic()
        if self.interrupted or now - self.last_check < 0.3:
            return self.interrupted
        self.last_check = now
        cancel = Run.objects.filter(pk=self.run.pk).values_list("cancel_requested_at", flat=True).first()
        if cancel is not None:
            self.interrupted = RunState.CANCELLED
        elif now >= self.deadline:
            self.interrupted = RunState.TIMED_OUT
        return self.interrupted

    def raise_if_interrupted(self) -> None:
        if self.check():
            raise RunInterrupted()

    def mark_running(self, **fields) -> None:
        Run.objects.filter(pk=self.run.pk, state__in=[RunState.STARTING, RunState.RUNNING]).update(
            state=RunState.RUNNING, heartbeat_at=timezone.now(), **fields
        )

    # --- one dbt invocation -----------------------------------------------------------
    def dbt(self, command: str, **options) -> int:
        """Run one dbt command inside this run; returns dbt's exit code (a DbtExit)."""
        found = get_project(self.run.project)
        if found is None:
            raise RuntimeError(f"dbt project {self.run.project!r} no longer exists")
        if command in WRITE_COMMANDS:
            self.write_lock.acquire(self.raise_if_interrupted)
        self.raise_if_interrupted()
        parse_state = project_state_dir(self.run.project)
        invocation = DbtInvocation.prepare(
            command,
            project_dir=found.path,
            profiles_dir=found.profiles_dir,
            work_dir=run_dir(self.run.pk),
            index=self.invocations,
            parse_state_dir=parse_state,
            target=self.run.target,
            threads=self.run.threads,
            **options,
        )
        self.invocations += 1
        self.log.write(invocation.display)
        self.log.flush()
        env = dbt_environment(
            os.environ,
            settings.DBT_ENV,
            DBT_APPLICATION_NAME=application_name(self.run.pk),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        )
        process = invocation.start(_launcher, env)
        self.mark_running(
            process_group=process.pid,
            target_path=str(invocation.target_path),
            log_path=str(invocation.log_path),
            reason="",
        )
        progress = NodeProgress(self.run, self.log)
        self.follow(invocation, progress)
        invocation.keep_parse_state(parse_state, tag=str(self.run.pk))
        manifest = self.read_artifact(invocation.manifest)
        outcomes = self.read_artifact(invocation.run_results) or []
        if (invocation.target_path / "run_results.json").is_file():
            progress.record_results(outcomes, invocation.target_path, manifest)
        self.hand_to_lineage(invocation, manifest, outcomes)
        return invocation.exit_code

    def follow(self, invocation: DbtInvocation, progress: NodeProgress) -> None:
        """Stream dbt's lines into the log and node progress until its process group is
        gone, stopping it on cancel or timeout."""
        for line in invocation.lines():
            if line is not None:
                progress.on_line(line)
                continue
            self.log.maybe_flush()
            if self.check() and not invocation.stopped:
                self.log.write(
                    f"cancel requested: stopping dbt (SIGINT, then SIGKILL after {settings.RUN_CANCEL_GRACE_SECONDS}s)"
                    if self.interrupted == RunState.CANCELLED
                    else f"timed out after {self.run.timeout_seconds}s: stopping dbt"
                )
                self.log.flush()
                invocation.stop(settings.RUN_CANCEL_GRACE_SECONDS)
        left = terminate_backends(self.run.pk)
        if left:
            self.log.write(f"terminated {left} leftover warehouse connection(s) of this run")
        self.log.flush()
        if self.interrupted:
            raise RunInterrupted()

    def read_artifact(self, read: Callable[[], Any]) -> Any:
        """An artifact dbt wrote, or None with a warning in the log when it is unreadable."""
        try:
            return read()
        except (ArtifactError, ManifestError) as exc:
            self.log.write(f"warning: {exc}")
            return None

    def hand_to_lineage(
        self, invocation: DbtInvocation, manifest: Manifest | None, outcomes: list[NodeOutcome]
    ) -> None:
        from lineage import services as lineage

        try:
            if manifest is not None:
                catalog = invocation.target_path / "catalog.json"
                lineage.ingest_manifest(
                    self.run.project,
                    manifest,
                    catalog_path=catalog if catalog.is_file() else None,
                    run_id=self.run.pk,
                    actor=f"run #{self.run.pk}",
                )
            if outcomes:
                lineage.record_run_results(
                    self.run.project, self.run.pk, [outcome.as_lineage_result() for outcome in outcomes]
                )
        except Exception as exc:  # noqa: BLE001 - lineage trouble must not change the run's outcome
            logger.exception("lineage ingest of run %s failed", self.run.pk)
            self.log.write(f"warning: lineage could not take this run's artifacts: {exc}")

    # --- the whole run ----------------------------------------------------------------
    def execute(self) -> None:
        state, reason, exit_code = RunState.ERROR, "", None
        heartbeat = Heartbeat(self.run.pk)
        heartbeat.start()
        try:
            run_dir(self.run.pk).mkdir(parents=True, exist_ok=True)
            if self.run.kind == "dbt":
                exit_code = self.dbt(
                    self.run.command,
                    select=self.run.select,
                    exclude=self.run.exclude,
                    vars=self.run.vars,
                    full_refresh=self.run.full_refresh,
                )
                state, reason = self.outcome(exit_code)
            else:
                kind = get_kind(self.run.kind)
                if kind is None:
                    raise RuntimeError(f"run kind {self.run.kind!r} is not registered in this worker")
                self.mark_running(reason="")
                kind.handler(self.context())
                state, reason = RunState.SUCCESS, ""
        except RunInterrupted:
            state = self.interrupted or RunState.CANCELLED
            reason = (
                Run.objects.filter(pk=self.run.pk).values_list("reason", flat=True).first() or "cancelled"
                if state == RunState.CANCELLED
                else f"timed out after {self.run.timeout_seconds} s"
            )
            reason = reason.replace("cancel requested by", "cancelled by")
        except RunFailed as exc:
            state, reason = RunState.FAILED, exc.reason
        except Exception as exc:  # noqa: BLE001 - any crash ends the run `error`, with the message
            logger.exception("run %s crashed", self.run.pk)
            state, reason = RunState.ERROR, str(exc) or exc.__class__.__name__
            self.log.write("".join(traceback.format_exception(exc)).rstrip())
        finally:
            heartbeat.stop()
            self.finish(state, reason, exit_code)

    def outcome(self, exit_code: int) -> tuple[str, str]:
        if exit_code == DbtExit.SUCCESS:
            return RunState.SUCCESS, ""
        if exit_code == DbtExit.FAILURE:
            failed = list(
                NodeResult.objects.filter(run_id=self.run.pk, status__in=FAILED_NODE_STATUSES).values_list(
                    "name", flat=True
                )[:5]
            )
            return RunState.FAILED, (f"{len(failed)} node(s) failed: {', '.join(failed)}" if failed else "dbt failed")
        message = self.log.errors[-1] if self.log.errors else f"dbt exited with code {exit_code}"
        return RunState.ERROR, disk_full_reason(run_dir(self.run.pk)) or message

    def context(self) -> RunContext:
        def log(line: str) -> None:
            self.log.write(line)
            self.log.maybe_flush()

        return RunContext(self.run, log=log, dbt=self.dbt, interrupted=lambda: self.check() is not None)

    def finish(self, state: str, reason: str, exit_code: int | None) -> None:
        try:
            self.write_lock.release()
            self.log.write(f"run ended: {state}" + (f" ({reason})" if reason else ""))
            self.log.flush()
        finally:
            ended = Run.objects.filter(pk=self.run.pk, state__in=[RunState.STARTING, RunState.RUNNING]).update(
                state=state,
                reason=reason[:5000],
                exit_code=exit_code,
                finished_at=timezone.now(),
                heartbeat_at=timezone.now(),
            )
            if ended:
                self.run.state = state
                enqueue_notifications(self.run)


def execute_run(run_id: int, echo: Callable[[str], None] | None = None) -> None:
    """The queue task. A run is claimed by a conditional update, so a task delivered twice
    (or after the run was cancelled while queued) starts dbt at most once. `echo` gets each
    log line too (manage.py dbt executes its run in its own process and prints them)."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, state=RunState.QUEUED).update(
        state=RunState.STARTING, started_at=now, heartbeat_at=now, worker=WORKER_ID, reason="starting"
    )
    if not claimed:
        logger.info("run %s: not queued any more, delivery ignored", run_id)
        return
    RunExecution(Run.objects.get(pk=run_id), echo=echo).execute()


def reap_lost_runs() -> int:
    """Periodic (django-q2 schedule, every minute): a run whose worker stopped beating is
    marked `error` (worker lost), never started again; its dbt process group (when on this
    host) and warehouse backends are killed."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.RUN_STALE_AFTER_SECONDS)
    host = socket.gethostname()
    reaped = 0
    lost = Run.objects.filter(state__in=[RunState.STARTING, RunState.RUNNING], heartbeat_at__lt=stale_before)
    for run in lost:
        since = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
        reason = f"worker lost: no heartbeat from {run.worker or 'the worker'} since {since}"
        if not Run.objects.filter(pk=run.pk, state=run.state, heartbeat_at=run.heartbeat_at).update(
            state=RunState.ERROR, reason=reason, finished_at=now
        ):
            continue
        reaped += 1
        notes = [f"reaper: {reason}"]
        if run.process_group and run.worker.rsplit(":", 1)[0] == host:
            stop_group(run.process_group, settings.RUN_CANCEL_GRACE_SECONDS)
            notes.append(f"reaper: stopped dbt process group {run.process_group}")
        try:
            left = terminate_backends(run.pk)
        except psycopg.Error as exc:
            notes.append(f"reaper: could not check warehouse connections: {exc}")
        else:
            if left:
                notes.append(f"reaper: terminated {left} leftover warehouse connection(s)")
        run.refresh_from_db()
        writer = LogWriter(run)
        for note in notes:
            writer.write(note)
        writer.flush()
        enqueue_notifications(run)
        logger.warning("run %s: %s", run.pk, reason)
    return reaped
