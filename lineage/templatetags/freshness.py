"""Source freshness in templates: `{{ seconds|age }}` and `{% freshness_summary %}`, the
latest status counts and the sources that are not fresh (of one project, or of all), for any
page that wants them (the operations dashboard's freshness slot)."""

from __future__ import annotations

from typing import Any

from django import template

from lineage.freshness import summary

register = template.Library()

_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


@register.filter
def age(seconds: float | None) -> str:
    """A duration in its two largest units: 45 s, 12 min, 30 h 5 min, 3 d 2 h; — for none."""
    if seconds is None:
        return "—"
    left = int(seconds)
    for (size, unit), (smaller, smaller_unit) in zip(_UNITS, _UNITS[1:], strict=False):
        if left >= size:
            whole, rest = divmod(left, size)
            return f"{whole} {unit} {rest // smaller} {smaller_unit}" if rest >= smaller else f"{whole} {unit}"
    return f"{left} s"


@register.inclusion_tag("lineage/snippets/freshness_summary.html")
def freshness_summary(project: str | None = None) -> dict[str, Any]:
    return {"summary": summary(project), "project": project}
