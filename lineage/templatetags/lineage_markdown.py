from __future__ import annotations

import threading

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# What Markdown produces for prose, lists, code and tables; no images (they would fetch
# third-party URLs from a viewer's browser), no raw HTML beyond these.
ALLOWED_TAGS = {
    *("p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li", "a"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"),
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
# One converter per thread, reset for each text: making one costs more than converting a
# description (a node page renders a dozen).
_local = threading.local()


def _converter() -> markdown_lib.Markdown:
    if not hasattr(_local, "converter"):
        _local.converter = markdown_lib.Markdown(extensions=["fenced_code", "tables"])
    return _local.converter.reset()


@register.filter
def markdown(text: str) -> SafeString:
    """dbt descriptions are Markdown written by anyone with repo access: render, then keep
    only a strict allowlist (no script, no event handlers, no javascript: URLs)."""
    html = _converter().convert(text or "")
    clean = nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes=URL_SCHEMES)
    return mark_safe(clean)  # noqa: S308 - sanitised by nh3 just above
