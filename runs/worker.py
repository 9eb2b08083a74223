"""The queue task that executes one run, in a django-q2 worker (DESIGN.md §3)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from lineage.projects import get_project
from runs.dbt.artifacts import ArtifactError, compiled_sql_path, read_run_results
from runs.dbt.commands import WRITE_COMMANDS, build_argv
from runs.dbt.environment import dbt_environment
from runs.dbt.events import DbtEvent, parse_line
from runs.dbt.launcher import DbtProcess, Launcher, stop_group
from runs.dbt.manifest import load_manifest
from runs.kinds import RunContext, RunFailed, RunInterrupted, get_kind
from runs.models import FAILED_NODE_STATUSES, NodeResult, Run, RunLogChunk, RunState
from runs.notifications import enqueue_notifications
from runs.services import project_state_dir, run_dir

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
_LOCK_CLASS = 0x72756E73  # "runs": advisory-lock namespace for project+target write locks
_launcher = Launcher()
_IN_PROGRESS = {"started", "compiling", "executing", "running", ""}


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


class LogWriter:
    """Buffers log lines and stores them as chunks (few, batched writes)."""

    FLUSH_LINES = 200
    FLUSH_SECONDS = 0.5

    def __init__(self, run: Run) -> None:
        self.run = run
        self.next_line = run.log_lines
        self.buffer: list[str] = []
        self.last_flush = time.monotonic()
        self.errors: list[str] = []

    def write(self, line: str) -> None:
        self.buffer.append(line.rstrip("\n"))
        if len(self.buffer) >= self.FLUSH_LINES:
            self.flush()

    def maybe_flush(self) -> None:
        if self.buffer and time.monotonic() - self.last_flush >= self.FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.buffer:
            return
        lines, self.buffer = self.buffer, []
        with transaction.atomic():
            RunLogChunk.objects.create(
                run_id=self.run.pk, first_line=self.next_line, line_count=len(lines), text="\n".join(lines)
            )
            Run.objects.filter(pk=self.run.pk).update(log_lines=F("log_lines") + len(lines))
        self.next_line += len(lines)


@dataclass
class Invocation:
    """Progress of one dbt invocation inside the run."""

    index: int
    nodes_base: int
    total: int = 0
    started: set[str] = field(default_factory=set)
    finished: set[str] = field(default_factory=set)


class RunExecution:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.log = LogWriter(run)
        self.deadline = time.monotonic() + run.timeout_seconds
        self.interrupted: str | None = None
        self.last_check = 0.0
        self.invocations = 0
        self.held_locks: list[str] = []

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

    # --- write serialization ----------------------------------------------------------
    def _lock_key(self) -> str:
        return f"{self.run.project}:{self.run.target}"

    def acquire_write_lock(self) -> None:
        key = self._lock_key()
        if key in self.held_locks:
            return
        waiting_on: int | None = None
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, key])
                if cursor.fetchone()[0]:
                    self.held_locks.append(key)
                    if waiting_on is not None:
                        Run.objects.filter(pk=self.run.pk).update(reason="")
                    return
            holder = (
                Run.objects.active()
                .filter(project=self.run.project, target=self.run.target)
                .exclude(pk=self.run.pk)
                .exclude(state=RunState.QUEUED)
                .order_by("started_at")
                .values_list("pk", flat=True)
                .first()
            )
            if holder != waiting_on and holder is not None:
                waiting_on = holder
                reason = f"waiting for run #{holder} (writes to {self.run.project} run one at a time)"
                Run.objects.filter(pk=self.run.pk).update(reason=reason)
                self.log.write(reason)
                self.log.flush()
            self.raise_if_interrupted()
            time.sleep(0.25)

    def release_locks(self) -> None:
        for key in self.held_locks:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_LOCK_CLASS, key])
            except Exception:  # noqa: BLE001 - the lock dies with the connection anyway
                logger.exception("could not release run lock %s", key)
        self.held_locks = []

    # --- one dbt invocation -----------------------------------------------------------
    def dbt(
        self,
        command: str,
        *,
        select: str = "",
        exclude: str = "",
        vars: dict | None = None,  # noqa: A002 - dbt's own name
        full_refresh: bool = False,
    ) -> int:
        found = get_project(self.run.project)
        if found is None:
            raise RuntimeError(f"dbt project {self.run.project!r} no longer exists")
        if command in WRITE_COMMANDS:
            self.acquire_write_lock()
        self.raise_if_interrupted()
        index = self.invocations
        self.invocations += 1
        base = run_dir(self.run.pk)
        target_path = base / ("target" if index == 0 else f"target-{index + 1}")
        log_path = base / ("logs" if index == 0 else f"logs-{index + 1}")
        target_path.mkdir(parents=True, exist_ok=True)
        log_path.mkdir(parents=True, exist_ok=True)
        seed = project_state_dir(self.run.project) / "partial_parse.msgpack"
        if seed.is_file():
            shutil.copyfile(seed, target_path / "partial_parse.msgpack")
        argv = build_argv(
            command,
            project_dir=found.path,
            profiles_dir=found.profiles_dir,
            target_path=target_path,
            log_path=log_path,
            select=select,
            exclude=exclude,
            vars=vars,
            full_refresh=full_refresh,
            target=self.run.target,
            threads=self.run.threads,
        )
        env = dbt_environment(
            os.environ,
            settings.DBT_ENV,
            DBT_APPLICATION_NAME=application_name(self.run.pk),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        )
        stdout_file = base / f"dbt-{index + 1}.jsonl"
        exit_file = base / f"dbt-{index + 1}.exit"
        self.log.write("$ dbt " + " ".join(argv))
        self.log.flush()
        process = _launcher.launch(argv, env=env, cwd=found.path, log_file=stdout_file, exit_file=exit_file)
        self.mark_running(
            process_group=process.pid,
            target_path=str(target_path),
            log_path=str(log_path),
            reason="",
        )
        invocation = Invocation(index=index, nodes_base=self.run_nodes_total())
        code = self.follow(process, stdout_file, invocation)
        self.ingest(target_path, invocation)
        return code

    def run_nodes_total(self) -> int:
        return Run.objects.filter(pk=self.run.pk).values_list("nodes_total", flat=True).first() or 0

    def follow(self, process: DbtProcess, stdout_file: Path, invocation: Invocation) -> int:
        """Stream dbt's JSON lines into the log and node progress until the process ends."""
        with open(stdout_file, "a+") as _touch:
            pass
        with open(stdout_file) as stream:
            partial = ""
            while True:
                running = process.is_running()
                chunk = stream.read()
                if chunk:
                    lines = (partial + chunk).split("\n")
                    partial = lines.pop()
                    for line in lines:
                        self.on_line(line, invocation)
                self.log.maybe_flush()
                if not running:
                    if partial:
                        self.on_line(partial, invocation)
                    break
                if self.check():
                    self.log.write(
                        "cancel requested: stopping dbt (SIGINT, then SIGKILL after "
                        f"{settings.RUN_CANCEL_GRACE_SECONDS}s)"
                        if self.interrupted == RunState.CANCELLED
                        else f"timed out after {self.run.timeout_seconds}s: stopping dbt"
                    )
                    self.log.flush()
                    stop_group(process.pid, settings.RUN_CANCEL_GRACE_SECONDS)
                    continue
                if not chunk:
                    time.sleep(0.05)
        left = terminate_backends(self.run.pk)
        if left:
            self.log.write(f"terminated {left} leftover warehouse connection(s) of this run")
        self.log.flush()
        if self.interrupted:
            raise RunInterrupted()
        code = process.exit_code()
        return 2 if code is None else code

    def on_line(self, line: str, invocation: Invocation) -> None:
        event = parse_line(line)
        if event is None:
            if line.strip():
                self.log.write(line)
            return
        if event.msg:
            self.log.write(event.render())
        if event.level == "error" and event.msg:
            self.log.errors.append(event.msg)
        info = event.node_info
        unique_id = info.get("unique_id")
        # dbt's NodeStart/NodeFinished are debug-level; the info-level start and result
        # lines carry the same node_info, so progress is read from whichever comes.
        if unique_id and info.get("node_finished_at") and info.get("node_status") not in _IN_PROGRESS:
            if unique_id not in invocation.finished:
                invocation.finished.add(unique_id)
                self.node_finished(event)
        elif unique_id and unique_id not in invocation.started:
            invocation.started.add(unique_id)
            self.node_started(event)
        # The total after the node's row: a page that sees the new total also finds the node.
        total = event.data.get("total")
        if event.name == "LogStartLine" and isinstance(total, int) and total > invocation.total:
            invocation.total = total
            Run.objects.filter(pk=self.run.pk).update(nodes_total=invocation.nodes_base + invocation.total)

    def node_started(self, event: DbtEvent) -> None:
        info = event.node_info
        if not info.get("unique_id"):
            return
        NodeResult.objects.update_or_create(
            run_id=self.run.pk,
            unique_id=info["unique_id"],
            defaults={
                "name": info.get("node_name", ""),
                "resource_type": info.get("resource_type", ""),
                "status": "running",
                "started_at": _dt(info.get("node_started_at")) or timezone.now(),
            },
        )

    def node_finished(self, event: DbtEvent) -> None:
        info = event.node_info
        if not info.get("unique_id"):
            return
        result = event.data.get("run_result") or event.data
        status = str(info.get("node_status") or result.get("status") or "")
        NodeResult.objects.update_or_create(
            run_id=self.run.pk,
            unique_id=info["unique_id"],
            defaults={
                "name": info.get("node_name", ""),
                "resource_type": info.get("resource_type", ""),
                "status": status,
                "finished_at": _dt(info.get("node_finished_at")) or timezone.now(),
                "execution_time": result.get("execution_time"),
                "message": str(result.get("message") or ""),
            },
        )
        Run.objects.filter(pk=self.run.pk).update(
            nodes_done=F("nodes_done") + 1,
            nodes_failed=F("nodes_failed") + (1 if status in FAILED_NODE_STATUSES else 0),
        )

    # --- artifacts --------------------------------------------------------------------
    def ingest(self, target_path: Path, invocation: Invocation) -> None:
        manifest_path = target_path / "manifest.json"
        manifest = None
        if manifest_path.is_file():
            state_dir = project_state_dir(self.run.project)
            state_dir.mkdir(parents=True, exist_ok=True)
            for name in ("manifest.json", "partial_parse.msgpack"):
                if (target_path / name).is_file():
                    tmp = state_dir / f".{name}.{self.run.pk}"
                    shutil.copyfile(target_path / name, tmp)
                    os.replace(tmp, state_dir / name)
            manifest = load_manifest(manifest_path)
        outcomes = []
        results_path = target_path / "run_results.json"
        if results_path.is_file():
            try:
                outcomes = read_run_results(results_path)
            except ArtifactError as exc:
                self.log.write(f"warning: {exc}")
            nodes = (manifest or {}).get("nodes", {})
            for outcome in outcomes:
                node = nodes.get(outcome.unique_id, {})
                NodeResult.objects.update_or_create(
                    run_id=self.run.pk,
                    unique_id=outcome.unique_id,
                    defaults={
                        "name": node.get("name") or outcome.unique_id.rsplit(".", 1)[-1],
                        "resource_type": node.get("resource_type") or outcome.unique_id.split(".", 1)[0],
                        "status": outcome.status,
                        "started_at": _dt(outcome.started_at),
                        "finished_at": _dt(outcome.completed_at),
                        "execution_time": outcome.execution_time,
                        "rows_affected": outcome.rows_affected,
                        "failures": outcome.failures,
                        "message": outcome.message,
                        "compiled_path": compiled_sql_path(target_path, node) if node else "",
                    },
                )
            results = NodeResult.objects.filter(run_id=self.run.pk)
            Run.objects.filter(pk=self.run.pk).update(
                nodes_total=max(invocation.nodes_base + invocation.total, results.count()),
                nodes_done=results.exclude(status="running").count(),
                nodes_failed=results.filter(status__in=FAILED_NODE_STATUSES).count(),
            )
        self.hand_to_lineage(manifest_path if manifest else None, target_path, outcomes)

    def hand_to_lineage(self, manifest_path: Path | None, target_path: Path, outcomes: list) -> None:
        from lineage import services as lineage

        try:
            if manifest_path is not None:
                catalog = target_path / "catalog.json"
                lineage.ingest_manifest(
                    self.run.project,
                    manifest_path,
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
        if exit_code == 0:
            return RunState.SUCCESS, ""
        if exit_code == 1:
            failed = list(
                NodeResult.objects.filter(run_id=self.run.pk, status__in=FAILED_NODE_STATUSES).values_list(
                    "name", flat=True
                )[:5]
            )
            return RunState.FAILED, (f"{len(failed)} node(s) failed: {', '.join(failed)}" if failed else "dbt failed")
        message = self.log.errors[-1] if self.log.errors else f"dbt exited with code {exit_code}"
        return RunState.ERROR, message

    def context(self) -> RunContext:
        def dbt(command: str, **kwargs) -> int:
            return self.dbt(command, **kwargs)

        def log(line: str) -> None:
            self.log.write(line)
            self.log.maybe_flush()

        return RunContext(self.run, log=log, dbt=dbt, interrupted=lambda: self.check() is not None)

    def finish(self, state: str, reason: str, exit_code: int | None) -> None:
        try:
            self.release_locks()
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


def _dt(value: str | None) -> datetime | None:
    """dbt's timestamps are UTC, some without an offset."""
    parsed = parse_datetime(value.replace("Z", "+00:00")) if value else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def execute_run(run_id: int) -> None:
    """The queue task. A run is claimed by a conditional update, so a task delivered twice
    (or after the run was cancelled while queued) starts dbt at most once."""
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, state=RunState.QUEUED).update(
        state=RunState.STARTING, started_at=now, heartbeat_at=now, worker=WORKER_ID, reason="starting"
    )
    if not claimed:
        logger.info("run %s: not queued any more, delivery ignored", run_id)
        return
    RunExecution(Run.objects.get(pk=run_id)).execute()


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
