"""The worker registry (not the queue task, runs/worker.py): each queue cluster has a name
(PORTAL_WORKER_NAME) that its worker processes beat into the `Worker` table; the name decides
who owns a run's dbt. Only a worker of the run's name ever signals it (the reaper elsewhere
just marks the run lost), and a worker starting under a name first stops what the reaped runs
of that name left behind on this host, before it takes work (warm_up runs in django-q2's
post_spawn, before the worker's task loop)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

from dbtlib.launcher import group_is_dbt, leads_group_writing_to, stop_group
from runs.models import FINAL_STATES, Run, Worker
from runs.progress import LogWriter
from runs.services import run_dir

logger = logging.getLogger(__name__)


class Beat(threading.Thread):
    """Calls beat() every RUN_HEARTBEAT_SECONDS until stop(), whatever the main thread is
    busy with. Its own thread, so its own database connection: a database error costs one
    beat (logged; the connection is dropped so the next beat reconnects), never the thread."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.stopped = threading.Event()

    def beat(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.RUN_HEARTBEAT_SECONDS):
                try:
                    self.beat()
                except Exception:  # noqa: BLE001 - log, reconnect at the next beat, keep beating
                    logger.exception("%s failed; retrying", self.name)
                    with contextlib.suppress(Exception):
                        connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


class WorkerBeat(Beat):
    def __init__(self) -> None:
        super().__init__(name="heartbeat-worker")

    def beat(self) -> None:
        register()


def register() -> None:
    """Create or refresh this cluster's row. Its pid is django-q2's sentinel (the parent of
    every worker process of the cluster), so the processes sharing the name beat one row."""
    name, host, pid, now = settings.PORTAL_WORKER_NAME, socket.gethostname(), os.getppid(), timezone.now()
    if Worker.objects.filter(name=name, hostname=host, pid=pid).update(heartbeat_at=now):
        return
    other = Worker.objects.alive().filter(name=name).first()
    if other is not None:
        logger.warning(
            "PORTAL_WORKER_NAME=%s is also used by %s (pid %s), alive %s ago: names must be unique per cluster",
            name,
            other.hostname,
            other.pid,
            now - other.heartbeat_at,
        )
    Worker.objects.update_or_create(
        name=name, defaults={"hostname": host, "pid": pid, "started_at": now, "heartbeat_at": now}
    )


def name_taken() -> str | None:
    """Why no cluster may start under PORTAL_WORKER_NAME here, or None: another cluster of the
    name beat within RUN_STALE_AFTER_SECONDS, on another host or on this one with its
    supervising process still there. A stale row, or this host's cluster that is gone (a
    restart after a crash), leaves the name free."""
    name = settings.PORTAL_WORKER_NAME
    other = Worker.objects.alive().filter(name=name).first()
    if other is None or (other.hostname == socket.gethostname() and not _process_exists(other.pid)):
        return None
    return (
        f"PORTAL_WORKER_NAME={name} is in use by {other.hostname} (pid {other.pid}), which beat "
        f"{(timezone.now() - other.heartbeat_at).total_seconds():.0f} s ago: give each worker host its own name "
        f"(or stop that one and start this one {settings.RUN_STALE_AFTER_SECONDS} s after its last beat)"
    )


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_worker() -> WorkerBeat:
    """A worker process's start (warm_up): register, stop what reaped runs of this name left,
    then beat. Retries until the database answers: no task is taken before that is done."""
    while True:
        try:
            register()
            stop_leftovers()
            break
        except Exception:  # noqa: BLE001 - the database may come up later; no work before this is done
            logger.exception("worker %s could not start; retrying", settings.PORTAL_WORKER_NAME)
            with contextlib.suppress(Exception):
                connection.close()
            time.sleep(settings.RUN_HEARTBEAT_SECONDS)
    beat = WorkerBeat()
    beat.start()
    return beat


def stop_leftovers() -> int:
    """Stop the dbt left by runs of this worker's name the reaper ended (final, with a process
    group still recorded). Runs still starting or running are never touched: a sibling process
    of this cluster may own them. Returns how many process groups were stopped."""
    reaped = Run.objects.filter(
        worker=settings.PORTAL_WORKER_NAME,
        state__in=FINAL_STATES,
        reaped_at__isnull=False,
        process_group__isnull=False,
    )
    return sum(stop_leftover_dbt(run, "worker start") for run in reaped)


def dbt_of_run(pgid: int, run_id: int) -> bool:
    """Whether process `pgid` is that run's dbt on this host, not a process that got the pid
    later: it still leads its own process group and its stdout is the run's own dbt-N.jsonl
    under RUNS_DIR/<id>/ (the check a run's worker makes before each signal, DbtProcess)."""
    return leads_group_writing_to(pgid, dbt_output_prefix(run_id))


def dbt_output_prefix(run_id: int) -> str:
    """Where every dbt of the run writes its stdout: RUNS_DIR/<id>/dbt-N.jsonl."""
    return f"{run_dir(run_id)}{os.sep}dbt-"


def stop_dbt_of_run(pgid: int, run_id: int) -> None:
    """stop_group, each signal only while the group is still that run's dbt (group_is_dbt):
    a process that got the pid after dbt ended, before or during the grace, is left alone."""
    stop_group(pgid, settings.RUN_CANCEL_GRACE_SECONDS, alive=lambda: group_is_dbt(pgid, dbt_output_prefix(run_id)))


def stop_leftover_dbt(run: Run, who: str) -> bool:
    """Stop a final run's leftover dbt on this host, once: the recorded process group is
    cleared first by a conditional update (a sibling process doing the same finds it taken and
    waits for the group to go), then stopped if it is that run's dbt. What was done goes into
    the run's log and the worker's. Returns whether a process group was stopped."""
    pgid = run.process_group
    ours = dbt_of_run(pgid, run.pk)
    if not Run.objects.filter(pk=run.pk, process_group=pgid).update(process_group=None):
        deadline = time.monotonic() + settings.RUN_CANCEL_GRACE_SECONDS + 10
        while ours and dbt_of_run(pgid, run.pk) and time.monotonic() < deadline:
            time.sleep(0.1)
        return False
    if ours:
        stop_dbt_of_run(pgid, run.pk)
        note = f"{who} ({settings.PORTAL_WORKER_NAME}): stopped this run's leftover dbt (process group {pgid})"
    else:
        note = f"{who} ({settings.PORTAL_WORKER_NAME}): this run's dbt (process group {pgid}) is gone; nothing to stop"
    run.refresh_from_db()
    writer = LogWriter(run)
    writer.write(note)
    writer.flush()
    logger.warning("run %s: %s", run.pk, note)
    return ours
