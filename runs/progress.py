"""What a running dbt invocation writes to the database: its log, as batched chunks, and
its nodes' progress and results (from the JSON log lines while it runs, then from
run_results.json once it ends)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dbtlib.artifacts import NodeOutcome, compiled_sql_path
from dbtlib.events import DbtEvent, parse_line
from dbtlib.manifest import Manifest
from runs.models import FAILED_NODE_STATUSES, NodeResult, Run, RunLogChunk

# node_status values of a node that has not finished yet
_IN_PROGRESS = {"started", "compiling", "executing", "running", ""}


class LogWriter:
    """Buffers log lines and stores them as chunks (few, batched writes); `echo`, when
    given, also gets every line as it is written (manage.py dbt prints them)."""

    FLUSH_LINES = 200
    FLUSH_SECONDS = 0.5

    def __init__(self, run: Run, echo: Callable[[str], None] | None = None) -> None:
        self.run = run
        self.echo = echo
        self.next_line = run.log_lines
        self.buffer: list[str] = []
        self.last_flush = time.monotonic()
        self.errors: list[str] = []

    def write(self, line: str) -> None:
        self.buffer.append(line.rstrip("\n"))
        if self.echo is not None:
            self.echo(self.buffer[-1])
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


class NodeProgress:
    """Node rows and the run's node counters for one dbt invocation inside a run (a run
    may invoke dbt several times: its counters add up across invocations)."""

    def __init__(self, run: Run, log: LogWriter, command: str, step: int = 1) -> None:
        self.run = run
        self.log = log
        self.command = command
        self.step = step
        self.nodes_base = Run.objects.filter(pk=run.pk).values_list("nodes_total", flat=True).first() or 0
        self.total = 0
        self.started: set[str] = set()
        self.finished: set[str] = set()

    def on_line(self, line: str) -> None:
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
            if unique_id not in self.finished:
                self.finished.add(unique_id)
                self._node_finished(event)
        elif unique_id and unique_id not in self.started:
            self.started.add(unique_id)
            self._node_started(event)
        # The total after the node's row: a page that sees the new total also finds the node.
        total = event.data.get("total")
        if event.name == "LogStartLine" and isinstance(total, int) and total > self.total:
            self.total = total
            Run.objects.filter(pk=self.run.pk).update(nodes_total=self.nodes_base + self.total)

    def _save_node(self, info: dict, **fields) -> None:
        NodeResult.objects.update_or_create(
            run_id=self.run.pk,
            step=self.step,
            unique_id=info["unique_id"],
            defaults={
                "name": info.get("node_name", ""),
                "resource_type": info.get("resource_type", ""),
                "command": self.command,
                **fields,
            },
        )

    def _node_started(self, event: DbtEvent) -> None:
        info = event.node_info
        self._save_node(
            info, status="running", started_at=parse_dbt_time(info.get("node_started_at")) or timezone.now()
        )

    def _node_finished(self, event: DbtEvent) -> None:
        info = event.node_info
        result = event.data.get("run_result") or event.data
        status = str(info.get("node_status") or result.get("status") or "")
        self._save_node(
            info,
            status=status,
            finished_at=parse_dbt_time(info.get("node_finished_at")) or timezone.now(),
            execution_time=result.get("execution_time"),
            message=str(result.get("message") or ""),
        )
        Run.objects.filter(pk=self.run.pk).update(
            nodes_done=F("nodes_done") + 1,
            nodes_failed=F("nodes_failed") + (1 if status in FAILED_NODE_STATUSES else 0),
        )

    def record_results(self, outcomes: list[NodeOutcome], target_path: Path, manifest: Manifest | None) -> None:
        """run_results.json is the final word on each node; the counters follow from it."""
        nodes = manifest.nodes if manifest else {}
        for outcome in outcomes:
            node = nodes.get(outcome.unique_id)
            resource_type = node.resource_type if node else outcome.unique_id.split(".", 1)[0]
            NodeResult.objects.update_or_create(
                run_id=self.run.pk,
                step=self.step,
                unique_id=outcome.unique_id,
                defaults={
                    "name": node.name if node else outcome.unique_id.rsplit(".", 1)[-1],
                    "resource_type": resource_type,
                    "command": self.command,
                    "status": outcome.status,
                    "started_at": parse_dbt_time(outcome.started_at),
                    "finished_at": parse_dbt_time(outcome.completed_at),
                    "execution_time": outcome.execution_time,
                    # a test's query returns one row (its count of failures): no row it affected
                    "rows_affected": None if resource_type == "test" else outcome.rows_affected,
                    "failures": outcome.failures,
                    "message": outcome.message,
                    "compiled_path": compiled_sql_path(target_path, node) if node else "",
                },
            )
        results = NodeResult.objects.filter(run_id=self.run.pk)
        Run.objects.filter(pk=self.run.pk).update(
            nodes_total=max(self.nodes_base + self.total, results.count()),
            nodes_done=results.exclude(status="running").count(),
            nodes_failed=results.filter(status__in=FAILED_NODE_STATUSES).count(),
        )


def parse_dbt_time(value: str | None) -> datetime | None:
    """dbt's timestamps are UTC, some without an offset."""
    parsed = parse_datetime(value.replace("Z", "+00:00")) if value else None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
