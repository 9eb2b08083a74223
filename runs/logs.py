from __future__ import annotations

from typing import Any

from django.db.models import F

from runs.models import Run

MAX_LINES = 2000


def log_lines(run: Run, first: int, end: int) -> list[str]:
    """Lines [first, end) of the stored log (fewer when the log is shorter)."""
    chunks = (
        run.log_chunks.annotate(end=F("first_line") + F("line_count"))
        .filter(end__gt=first, first_line__lt=end)
        .order_by("first_line")
    )
    lines: list[str] = []
    for chunk in chunks:
        lines.extend(chunk.text.split("\n")[max(0, first - chunk.first_line) :])
    return lines[: max(0, end - first)]


def read_log(run: Run, offset: int) -> dict[str, Any]:
    """Lines [offset, offset + MAX_LINES) of the stored log, plus where the run is."""
    lines = log_lines(run, offset, offset + MAX_LINES)
    return {
        "offset": offset,
        "next_offset": offset + len(lines),
        "lines": lines,
        "state": run.state,
        "state_label": run.get_state_display(),
        "reason": run.reason,
        "final": run.is_final,
        "nodes_total": run.nodes_total,
        "nodes_done": run.nodes_done,
        "nodes_failed": run.nodes_failed,
    }
