"""The queue task that executes one run in a django-q2 worker: claim, heartbeat, the
write lock (project + where dbt writes), the dbt invocations it drives, and the final state."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.utils import timezone

from dbtlib.artifacts import SOURCES_JSON, FreshnessOutcome, NodeOutcome, read_sources
from dbtlib.commands import EXECUTING_COMMANDS, STATE_COMMANDS, WRITE_COMMANDS
from dbtlib.environment import dbt_environment
from dbtlib.errors import ArtifactError, ManifestError
from dbtlib.git import GitError
from dbtlib.invocation import DbtInvocation
from dbtlib.launcher import DbtExit, Launcher
from dbtlib.manifest import Manifest
from kernel.errors import RequestError
from lineage.models import GitProject
from lineage.projects import DbtProject, at_commit, get_project
from runs import ci
from runs.artifacts import store_invocation
from runs.backends import application_name, terminate_backends
from runs.environments import RunVariables, cloud_variables, default_environment, prepare_profile
from runs.interrupts import InterruptWatch
from runs.kinds import RunContext, RunFailed, RunInterrupted, RunKind, get_kind
from runs.locks import ProjectWriteLock
from runs.logcontext import run_logging
from runs.models import FAILED_NODE_STATUSES, FINAL_STATES, NodeResult, Run, RunState, RunStep, StepState
from runs.notifications import enqueue_notifications
from runs.progress import LogWriter, NodeProgress
from runs.registry import Beat, start_worker
from runs.retention import disk_full_reason, prune_git_cache
from runs.services import project_state_dir, run_dir

logger = logging.getLogger(__name__)

_launcher = Launcher()
# Why a run stopped besides its own cancel or timeout (RunExecution.interrupted).
SHUTDOWN = "shutdown"  # the queue worker got SIGTERM
ENDED_ELSEWHERE = "ended elsewhere"  # the run was made final by someone else (the reaper)
_current: RunExecution | None = None


def warm_up(**_signal_kwargs) -> None:
    """django-q2 post_spawn (before the worker's task loop): start this worker's dbt launcher
    so the first run is warm; register the worker under PORTAL_WORKER_NAME, stop what reaped
    runs of that name left, and beat (runs/registry.py). SIGTERM (qcluster stopping, a service
    manager) cancels the running run, then exits."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    _launcher.start()
    start_worker()


def _on_sigterm(signum: int, _frame: Any) -> None:
    if _current is None:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    else:
        _current.shutdown = True


class Heartbeat(Beat):
    """Marks the run alive every RUN_HEARTBEAT_SECONDS while this worker owns it, whatever
    the main thread is busy with (a kind handler may compute for minutes without logging)."""

    def __init__(self, run_id: int) -> None:
        super().__init__(name=f"heartbeat-run-{run_id}")
        self.run_id = run_id

    def beat(self) -> None:
        Run.objects.beat(self.run_id)


STOPPING = {
    RunState.CANCELLED: (
        "cancel requested: stopping dbt (SIGINT, then SIGKILL after {settings.RUN_CANCEL_GRACE_SECONDS}s)"
    ),
    RunState.TIMED_OUT: "timed out after {self.run.timeout_seconds}s: stopping dbt",
    SHUTDOWN: "the queue worker is stopping (SIGTERM): stopping dbt",
    ENDED_ELSEWHERE: "this run was ended elsewhere (the reaper?): stopping dbt",
}


class RunExecution:
    def __init__(self, run: Run, echo: Callable[[str], None] | None = None) -> None:
        self.run = run
        self.log = LogWriter(run, echo)
        self.deadline = time.monotonic() + run.timeout_seconds
        self.interrupted: str | None = None
        self.last_check = 0.0
        self.invocations = 0
        self.write_lock = ProjectWriteLock(run, self.log)
        self.shutdown = False
        self.process_group: int | None = None
        self.artifacts_stored = True  # every invocation's files went to the artifact storage
        self.step = 1  # the step whose node results dbt's lines are
        self.variables: RunVariables | None = None  # its dbt's, with the generated profile
        self.cloud_variables: dict[str, str] = {}  # dbt Cloud's DBT_CLOUD_* for the run
        # The run's newest manifest and catalog.json: lineage takes them once, when it ends.
        self.manifest: Manifest | None = None
        self.catalog_path: Path | None = None
        self.found: DbtProject | None = None  # the project, a git project's at the run's commit
        # A CI run's comparison: the manifest dbt's --state reads, and the run it came from.
        self.state_dir: Path | None = None
        self.compared_with: Run | None = None

    # --- cancel, timeout, heartbeat ---------------------------------------------------
    def check(self) -> str | None:
        """Cancelled, timed out, shutting down, or ended elsewhere (the run's row says it is
        final or is gone)? Cheap enough to call in loops."""
        now = time.monotonic()
        if self.interrupted or now - self.last_check < 0.3:
            return self.interrupted
        self.last_check = now
        row = Run.objects.filter(pk=self.run.pk).values_list("state", "cancel_requested_at").first()
        state, cancel = row or (None, None)
        if state is None or state in FINAL_STATES:
            self.interrupted = ENDED_ELSEWHERE
        elif cancel is not None:
            self.interrupted = RunState.CANCELLED
        elif now >= self.deadline:
            self.interrupted = RunState.TIMED_OUT
        elif self.shutdown:
            self.interrupted = SHUTDOWN
        return self.interrupted

    def interruption(self) -> tuple[str, str]:
        """The run's final state and reason once it was interrupted."""
        if self.interrupted == RunState.TIMED_OUT:
            return RunState.TIMED_OUT, f"timed out after {self.run.timeout_seconds} s"
        if self.interrupted == SHUTDOWN:
            return RunState.CANCELLED, "cancelled: its queue worker was stopped (SIGTERM)"
        row = Run.objects.filter(pk=self.run.pk).values_list("state", "reason").first()
        state, reason = row or (RunState.ERROR, "the run was deleted")
        if self.interrupted == ENDED_ELSEWHERE:
            return state, reason
        return RunState.CANCELLED, (reason or "cancelled").replace("cancel requested by", "cancelled by")

    def raise_if_interrupted(self) -> None:
        if self.check():
            raise RunInterrupted()

    def mark_running(self, **fields) -> None:
        Run.objects.start(self.run.pk, **fields)

    # --- one dbt invocation -----------------------------------------------------------
    def dbt(self, command: str, **options) -> int:
        """Run one dbt command inside this run; returns dbt's exit code (a DbtExit)."""
        found = self.project()
        parse_state = project_state_dir(found.state_key)
        if self.compares and command in STATE_COMMANDS:
            options = {**options, "state": self.comparison(), "defer": True}
        profiles_dir = run_dir(self.run.pk) / "profile"
        if self.variables is None:
            environment = self.run.environment or default_environment(self.run.project)
            self.variables = prepare_profile(
                profiles_dir,
                environment,
                project_dir=found.path,
                target=self.run.target,
                schema=self.run.schema,
                threads=self.run.threads,
            )
            self.log.write(f"environment {environment.name}: dbt target {self.run.target or environment.target_name}")
            self.cloud_variables = cloud_variables(self.run, environment)
        if command in WRITE_COMMANDS:
            self.write_lock.acquire(self.raise_if_interrupted)
        self.raise_if_interrupted()
        invocation = DbtInvocation.prepare(
            command,
            project_dir=found.path,
            profiles_dir=profiles_dir,
            work_dir=run_dir(self.run.pk),
            index=self.invocations,
            parse_state_dir=parse_state,
            **options,
        )
        self.invocations += 1
        self.log.write(invocation.display)
        self.log.flush()
        env = dbt_environment(
            os.environ,
            self.variables.portal,
            project=self.variables.project,
            DBT_APPLICATION_NAME=application_name(self.run.pk),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            **self.cloud_variables,
        )
        process = invocation.start(_launcher, env)
        self.process_group = process.pid
        self.mark_running(
            process_group=process.pid,
            target_path=str(invocation.target_path),
            log_path=str(invocation.log_path),
            reason="",
        )
        progress = NodeProgress(self.run, self.log, command, step=self.step)
        started = time.monotonic()
        try:
            self.follow(invocation, progress)
            self.log.write(f"dbt exited with code {invocation.exit_code} after {time.monotonic() - started:.2f} s")
        finally:
            self.end_dbt(invocation)
            self.artifacts_stored &= store_invocation(self.run.pk, self.invocations, invocation, self.log.write)
        if self.interrupted:
            raise RunInterrupted()
        invocation.keep_parse_state(parse_state, tag=str(self.run.pk))
        manifest = self.read_artifact(invocation.manifest)
        outcomes = self.read_artifact(invocation.run_results) or []
        if (invocation.target_path / "run_results.json").is_file():
            progress.record_results(outcomes, invocation.target_path, manifest)
        freshness = self.read_freshness(invocation, manifest) if command == "source freshness" else None
        self.hand_to_lineage(command, outcomes, freshness)
        if manifest is not None and self.compared_with is not None and self.run.changes is None:
            self.log.write(ci.record_changes(self.run, manifest, self.comparison(), self.compared_with))
        self.manifest = manifest or self.manifest
        catalog = invocation.target_path / "catalog.json"
        self.catalog_path = catalog if catalog.is_file() else self.catalog_path
        return invocation.exit_code

    def project(self) -> DbtProject:
        """The run's project; a git project's checked out at the run's commit on this host."""
        if self.found is None:
            found = get_project(self.run.project)
            if found is None:
                raise RuntimeError(f"dbt project {self.run.project!r} no longer exists")
            if found.git is not None:
                sha = self.run.git_sha
                if not sha:
                    raise RuntimeError(f"git project {found.name!r}: this run has no commit to check out")
                self.log.write(f"checking out commit {sha} of {found.git.repository_url}")
                try:
                    found = at_commit(found, sha)
                except (GitError, RequestError) as exc:
                    raise RuntimeError(f"cannot check out commit {sha[:12]}: {exc}") from None
            self.found = found
        return self.found

    def comparison(self) -> Path:
        """A CI run's --state directory (runs.ci), written once per run."""
        if self.state_dir is None:
            directory = run_dir(self.run.pk) / "state"
            self.compared_with = ci.write_comparison(self.run, directory)
            self.log.write(f"comparing with and deferring to run #{self.compared_with.pk}'s manifest")
            self.state_dir = directory
        return self.state_dir

    @property
    def compares(self) -> bool:
        """A CI run (a pull request's, or any run of a CI job): its steps get --state and --defer."""
        job = self.run.job
        return self.run.pull_request is not None or bool(job and job.triggers_on_pull_request)

    @property
    def feeds_lineage(self) -> bool:
        """Whether the run's results are the project's news: not a CI run's, and a git
        project's only when it runs its default branch's newest head known (lineage.projects.pin
        records both), so an older commit's run finishing late never takes the docs back."""
        git = self.found.git if self.found else None
        if self.compares or git is None:
            return not self.compares
        newest = GitProject.objects.filter(pk=git.pk, last_sha=self.run.git_sha).exists()
        return self.run.git_branch == git.branch and newest

    def follow(self, invocation: DbtInvocation, progress: NodeProgress) -> None:
        """Stream dbt's lines into the log and node progress until its process group is
        gone, stopping it on cancel, timeout, shutdown or the run ended elsewhere."""
        for line in invocation.lines():
            if line is not None:
                progress.on_line(line)
                continue
            self.log.maybe_flush()
            if self.check() and not invocation.stopped:
                self.log.write(STOPPING[self.interrupted].format(self=self, settings=settings))
                self.log.flush()
                invocation.stop(settings.RUN_CANCEL_GRACE_SECONDS)

    def end_dbt(self, invocation: DbtInvocation) -> None:
        """dbt never outlives its run: whatever ended the follow loop (its end, an
        interruption, an exception), its process group is stopped and its warehouse
        backends terminated before the run's lock is released or its state final."""
        if invocation.process is not None and invocation.process.is_running():
            self.log.write(f"stopping dbt (process group {invocation.process.pid})")
            invocation.stop(settings.RUN_CANCEL_GRACE_SECONDS)
        try:
            left = terminate_backends(self.run.pk)
        except psycopg.Error as exc:
            self.log.write(f"warning: could not check this run's warehouse connections: {exc}")
        else:
            if left:
                self.log.write(f"terminated {left} leftover warehouse connection(s) of this run")

    def read_artifact(self, read: Callable[[], Any]) -> Any:
        """An artifact dbt wrote, or None with a warning in the log when it is unreadable."""
        try:
            return read()
        except (ArtifactError, ManifestError) as exc:
            self.log.write(f"warning: {exc}")
            return None

    def read_freshness(self, invocation: DbtInvocation, manifest: Manifest | None) -> list[FreshnessOutcome] | None:
        """sources.json of a `source freshness`, plus the sources dbt found no age for (a
        missing table or column, an empty table: a runtime error, which dbt leaves out of the
        file but logs); None, with a warning in the log, when there is no readable file."""
        path = invocation.target_path / SOURCES_JSON
        if not path.is_file():
            self.log.write(f"warning: dbt wrote no {SOURCES_JSON}: this run's source freshness is not recorded")
            return None
        outcomes = self.read_artifact(lambda: read_sources(path))
        if outcomes is None:
            return None
        nodes = manifest.nodes if manifest else {}
        erred = NodeResult.objects.filter(
            run_id=self.run.pk, step=self.step, resource_type="source", status="runtime error"
        ).exclude(unique_id__in=[outcome.unique_id for outcome in outcomes])
        for unique_id, message in erred.values_list("unique_id", "message"):
            node = nodes.get(unique_id)
            criteria = node.config.get("freshness") if node else None
            # dbt logs the error itself as "Database Error in source <table> (<file>)…"
            logged = next((e.strip() for e in self.log.errors if node and f" in source {node.name} (" in e), "")
            outcomes.append(
                FreshnessOutcome(
                    unique_id=unique_id,
                    status="runtime error",
                    max_loaded_at=None,
                    snapshotted_at=None,
                    age_seconds=None,
                    criteria=dict(criteria) if isinstance(criteria, Mapping) else {},
                    error=message or logged or f"see the log of run #{self.run.pk}",
                )
            )
        return outcomes

    @contextmanager
    def lineage_trouble_logged(self) -> Iterator[None]:
        """Lineage trouble never changes the run's outcome: it is a warning in the log."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - lineage trouble must not change the run's outcome
            logger.exception("lineage ingest of run %s failed", self.run.pk)
            self.log.write(f"warning: lineage could not take this run's artifacts: {exc}")

    def hand_to_lineage(
        self, command: str, outcomes: list[NodeOutcome], freshness: list[FreshnessOutcome] | None = None
    ) -> None:
        """Each node's latest result, from an invocation that executed nodes (a compile or docs
        generate says `success` for every node it compiled), and the sources' freshness."""
        from lineage import freshness as lineage_freshness
        from lineage import services as lineage

        if not self.feeds_lineage:
            return
        with self.lineage_trouble_logged():
            if outcomes and command in EXECUTING_COMMANDS:
                lineage.record_run_results(
                    self.run.project, self.run.pk, [outcome.as_lineage_result() for outcome in outcomes]
                )
            if freshness is not None:
                lineage_freshness.record(self.run.project, self.run.pk, freshness)

    def ingest_manifest(self) -> None:
        """One lineage snapshot per run, however many steps: its newest manifest, with the
        newest catalog any of its steps generated (else lineage keeps the project's latest)."""
        from lineage import services as lineage

        if self.manifest is None or not self.feeds_lineage:
            return
        with self.lineage_trouble_logged():
            lineage.ingest_manifest(
                self.run.project,
                self.manifest,
                catalog_path=self.catalog_path,
                run_id=self.run.pk,
                actor=f"run #{self.run.pk}",
            )

    # --- the whole run ----------------------------------------------------------------
    def execute(self) -> None:
        state, reason, exit_code = RunState.ERROR, "", None
        heartbeat = Heartbeat(self.run.pk)
        heartbeat.start()
        try:
            run_dir(self.run.pk).mkdir(parents=True, exist_ok=True)
            steps = list(self.run.steps.order_by("index")) if self.run.kind == "dbt" else []
            if steps:
                exit_code = self.run_steps(steps)
                state, reason = self.outcome(exit_code)
            elif self.run.kind == "dbt":
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
                self.run_handler(kind)
                state, reason = RunState.SUCCESS, ""
        except RunInterrupted:
            state, reason = self.interruption()
        except RunFailed as exc:
            state, reason = RunState.FAILED, exc.reason
        except Exception as exc:  # noqa: BLE001 - any crash ends the run `error`, with the message
            logger.exception("run %s crashed", self.run.pk)
            state, reason = RunState.ERROR, disk_full_reason(run_dir(self.run.pk)) or str(exc) or type(exc).__name__
            self.log.write("".join(traceback.format_exception(exc)).rstrip())
        finally:
            self.ingest_manifest()
            heartbeat.stop()
            self.finish(state, reason, exit_code)

    def run_steps(self, steps: list[RunStep]) -> int:
        """A job run: each step in order, with its own log section, node results, exit code
        and artifacts. A failed step stops the rest (skipped), except one that does not stop
        the job (the freshness step, as in dbt Cloud). Returns the exit code that decides the
        run: the first stopping step's that failed, else 0."""
        decisive = DbtExit.SUCCESS
        for step in steps:
            if decisive != DbtExit.SUCCESS:
                self._end_step(step, StepState.SKIPPED)
                continue
            self.step = step.index
            self.log.write(f"── step {step.index} of {len(steps)}: {step.name}")
            self.log.flush()
            RunStep.objects.filter(pk=step.pk).update(
                state=StepState.RUNNING, started_at=timezone.now(), log_first_line=self.log.next_line - 1
            )
            try:
                code = self.dbt(
                    step.command,
                    select=step.select,
                    exclude=step.exclude,
                    vars=step.vars,
                    full_refresh=step.full_refresh,
                    **step.options,
                )
            except BaseException:
                self._end_step(step, StepState.CANCELLED if self.interrupted else StepState.ERROR)
                for later in steps[steps.index(step) + 1 :]:
                    self._end_step(later, StepState.SKIPPED)
                raise
            failed = StepState.FAILED if code == DbtExit.FAILURE else StepState.ERROR
            self._end_step(step, StepState.SUCCESS if code == DbtExit.SUCCESS else failed, code)
            if code != DbtExit.SUCCESS and step.stops_job:
                decisive = code
        return decisive

    def _end_step(self, step: RunStep, state: str, exit_code: int | None = None) -> None:
        self.log.flush()
        ran = state != StepState.SKIPPED
        RunStep.objects.filter(pk=step.pk).update(
            state=state,
            exit_code=exit_code,
            invocation=self.invocations if ran else None,
            finished_at=timezone.now(),
            log_end_line=self.log.next_line if ran else None,
        )

    def run_handler(self, kind: RunKind) -> None:
        """The handler, with cancel and timeout terminating its warehouse connections; the
        error that raises in it then ends the run cancelled or timed out, not `error`."""
        with InterruptWatch(self.run.pk, self.check, lambda: terminate_backends(self.run.pk)):
            try:
                kind.handler(self.context())
            except Exception as exc:
                if self.check():
                    raise RunInterrupted() from exc
                raise

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

        return RunContext(
            self.run,
            log=log,
            dbt=self.dbt,
            interrupted=lambda: self.check() is not None,
            application_name=application_name(self.run.pk),
            waiting=self.show_waiting,
        )

    def show_waiting(self, reason: str) -> None:
        self.log.flush()
        self.mark_running(reason=reason)

    def finish(self, state: str, reason: str, exit_code: int | None) -> None:
        try:
            self.write_lock.release(self.process_group)
            self.log.write(f"run ended: {state}" + (f" ({reason})" if reason else ""))
            self.log.flush()
        finally:
            if self.artifacts_stored:  # all in the artifact storage: the run's directory is not needed
                shutil.rmtree(run_dir(self.run.pk), ignore_errors=True)
            ended = Run.objects.finish(self.run.pk, state=state, reason=reason, exit_code=exit_code)
            if ended:
                self.run.state = state
                enqueue_notifications(self.run)
            if self.found is not None and self.found.git is not None:
                prune_git_cache()
            logger.info(
                "run %s ended %s%s", self.run.pk, state if ended else "elsewhere", f": {reason}" if reason else ""
            )


def execute_run(run_id: int, echo: Callable[[str], None] | None = None) -> None:
    """The queue task. A run is claimed by a conditional update, so a task delivered twice
    (or after the run was cancelled while queued) starts dbt at most once. `echo` gets each
    log line too (manage.py dbt executes its run in its own process and prints them)."""
    if not Run.objects.claim(run_id, worker=settings.PORTAL_WORKER_NAME, worker_pid=os.getpid()):
        logger.info("run %s: not queued any more, delivery ignored", run_id)
        return
    global _current
    run = Run.objects.select_related("job", "triggered_by").get(pk=run_id)
    with run_logging(run):
        logger.info("run %s claimed by worker %s (pid %s)", run_id, settings.PORTAL_WORKER_NAME, os.getpid())
        _current = RunExecution(run, echo=echo)
        try:
            _current.execute()
        finally:
            stopping, _current = _current.shutdown, None
    if stopping:  # SIGTERM arrived during the run: exit now, as asked
        os.kill(os.getpid(), signal.SIGTERM)
