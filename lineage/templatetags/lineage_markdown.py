from __future__ import annotations

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """dbt descriptions are Markdown written by anyone with repo access: render, then keep
    only nh3's safe tags and attributes (no script, no event handlers, no javascript: URLs)."""
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables"])
    return mark_safe(nh3.clean(html))  # noqa: S308 - sanitised by nh3 just above
