"""Django-free: dbt's node selection, one engine for the trigger check and the select API."""

from __future__ import annotations

import re

from transformation_portal.errors import ErrorCode, RequestError

MAX_SELECTOR_LENGTH = 2000
# Characters a selector may hold: names, globs, methods, graph operators, paths, unions/intersections.
_SELECTOR_CHARS = re.compile(r"^[A-Za-z0-9_.:+*@/,=\-\[\]? ]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL = re.compile(r"[;&|$`<>(){}!'\"\\~#%^]")


def check_selector(field: str, value: str) -> str:
    """Syntax only; whether the selector matches nodes is checked against the manifest."""
    value = value.strip()
    if len(value) > MAX_SELECTOR_LENGTH:
        raise RequestError(
            f"selector is longer than {MAX_SELECTOR_LENGTH} characters", field=field, code=ErrorCode.INVALID_SELECTOR
        )
    if _CONTROL.search(value):
        raise RequestError("selector contains a control character", field=field, code=ErrorCode.INVALID_SELECTOR)
    shell = _SHELL.search(value)
    if shell:
        raise RequestError(
            f"selector contains the character {shell.group()!r}, which is not allowed",
            field=field,
            code=ErrorCode.INVALID_SELECTOR,
        )
    if not _SELECTOR_CHARS.match(value):
        raise RequestError(
            "selector contains characters that are not allowed", field=field, code=ErrorCode.INVALID_SELECTOR
        )
    for token in value.split():
        if token.startswith("-"):
            raise RequestError(
                f"selector term {token!r} starts with '-' (it would be read as an option)",
                field=field,
                code=ErrorCode.INVALID_SELECTOR,
            )
    return " ".join(value.split())
