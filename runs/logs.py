from __future__ import annotations

from typing import Any

from django.db.models import F

from runs.models import Run

MAX_LINES = 2000


def read_log(run: Run, offset: int) -> dict[str, Any]:
    """Lines [offset, offset + MAX_LINES) of the stored log, plus where the run is."""
    chunks = (
        run.log_chunks.annotate(end=F("first_line") + F("line_count"))
        .filter(end__gt=offset, first_line__lt=offset + MAX_LINES)
        .order_by("first_line")
    )
    lines: list[str] = []
    for chunk in chunks:
        lines.extend(chunk.text.split("\n")[max(0, offset - chunk.first_line) :])
    lines = lines[:MAX_LINES]
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
