"""Writes of one project to one place run one at a time: the place is where its dbt really
writes, the resolved connection (host, port, database) and schema of the run's environment,
whatever target name a run gives (docs/decisions/0004-write-serialisation-per-project-target.md);
reads overlap. A session-level PostgreSQL advisory lock, held by the worker's connection
for as long as the run writes: it is released by the run's end once its dbt is gone, or by
the connection's (a dead worker; its launcher then stops the dbt it started)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection

from runs.environments import project_default, write_target
from runs.models import Run, RunState
from runs.progress import LogWriter
from runs.registry import stop_dbt_of_run

logger = logging.getLogger(__name__)

_LOCK_CLASS = 0x72756E73  # "runs": advisory-lock namespace for the write locks


def write_key(run: Run) -> str:
    """The lock's key: the project and where the run's dbt writes."""
    environment = run.environment or project_default(run.project)
    return f"{run.project}:{write_target(environment, run.schema)}"


class ProjectWriteLock:
    def __init__(self, run: Run, log: LogWriter) -> None:
        self.run = run
        self.log = log
        self.key = ""  # known once the run waits for it
        self.held = False

    def acquire(self, check_interrupted: Callable[[], None]) -> None:
        """Wait for the lock, saying which run holds it; check_interrupted raises when the
        waiting run is cancelled or times out."""
        waiting_on: int | None = None
        self.key = write_key(self.run)
        while not self.held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_LOCK_CLASS, self.key])
                self.held = cursor.fetchone()[0]
            if self.held:
                if waiting_on is not None:
                    Run.objects.filter(pk=self.run.pk).update(reason="")
                return
            holder = self._holder()
            if holder != waiting_on and holder is not None:
                waiting_on = holder
                reason = f"waiting for run #{holder} (writes of {self.run.project} to one schema run one at a time)"
                Run.objects.filter(pk=self.run.pk).update(reason=reason)
                self.log.write(reason)
                self.log.flush()
            check_interrupted()
            time.sleep(0.25)

    def _holder(self) -> int | None:
        """The earliest started active run of the project that writes where this one does."""
        others = (
            Run.objects.active()
            .filter(project=self.run.project)
            .exclude(pk=self.run.pk)
            .exclude(state=RunState.QUEUED)
            .select_related("environment")
            .order_by("started_at")
        )
        return next((other.pk for other in others if write_key(other) == self.key), None)

    def release(self, process_group: int | None) -> None:
        """Release the lock, only once the run's dbt process group (if any) is gone: a
        dbt still writing must never overlap the next write. Only the run's dbt is signalled,
        never a process that got its pid after it ended (registry.stop_dbt_of_run)."""
        if not self.held:
            return
        if process_group:
            stop_dbt_of_run(process_group, self.run.pk)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_LOCK_CLASS, self.key])
        except Exception:  # noqa: BLE001 - the lock dies with the connection anyway
            logger.exception("could not release run lock %s", self.key)
        self.held = False
