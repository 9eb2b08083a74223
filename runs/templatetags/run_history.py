"""Run history on lineage's pages. Lineage sits below runs and may not import it, so its
templates load these tags: runs owns the queries and the markup, the node and project pages
only say where they go."""

from __future__ import annotations

from django import template

from runs.history import FLAKY_FLIPS, FLAKY_WINDOW, HISTORY_LENGTH, SLOWEST_RUNS, node_history, slowest_models

register = template.Library()


@register.inclusion_tag("runs/snippets/node_history.html")
def node_history_strip(project: str, node) -> dict:
    """The node's last results as a strip of cells; for a test, the flaky flag; for anything
    else, its duration over those runs as a line chart and a table."""
    return {
        "history": node_history(project, node.unique_id),
        "is_test": node.resource_type == "test",
        "length": HISTORY_LENGTH,
        "flaky_window": FLAKY_WINDOW,
        "flaky_flips": FLAKY_FLIPS,
    }


@register.inclusion_tag("runs/snippets/slowest_models.html")
def slowest_models_of(project: str) -> dict:
    return {"models": slowest_models(project=project), "last_runs": SLOWEST_RUNS}
