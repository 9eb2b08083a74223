"""Which run a log record belongs to. While a run is triggered (runs.services.create_run) or
executed (runs.worker.execute_run), every record logged in that context carries the run's
run_id, project, job and user as attributes, without any log call naming them: a ContextVar
holds the run's fields and RunContextFilter, on the console handler, copies them onto each
record (LOG_FORMAT=json prints them as fields). Threads a run starts (its heartbeat) do not
inherit it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.models import Run

_run_fields: ContextVar[dict[str, object] | None] = ContextVar("run_log_fields", default=None)


def run_fields(run: Run) -> dict[str, object]:
    """The fields a run's log records carry; job and user are None when the run has none."""
    return {
        "run_id": run.pk,
        "project": run.project,
        "job": run.job.name if run.job_id else None,
        "user": run.triggered_by.get_username() if run.triggered_by_id else None,
    }


@contextmanager
def run_logging(run: Run) -> Iterator[None]:
    """Records logged inside carry `run`'s fields."""
    token = _run_fields.set(run_fields(run))
    try:
        yield
    finally:
        _run_fields.reset(token)


class RunContextFilter(logging.Filter):
    """A handler filter: adds the current run's fields to the record (none outside a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_run_fields.get() or {}).items():
            record.__dict__.setdefault(name, value)
        return True
