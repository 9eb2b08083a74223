"""Artifact text as highlighted HTML for a page, rendered on the server by Pygments: every
character of the text comes out escaped, so a hostile file (compiled SQL holding
`</script>`) shows as text. JSON is pretty-printed first."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from django.utils.safestring import SafeString, mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import JsonLexer, SqlLexer, TextLexer, YamlLexer

LEXERS: dict[str, type[Lexer]] = {".sql": SqlLexer, ".json": JsonLexer, ".yml": YamlLexer, ".yaml": YamlLexer}


def pretty_json(text: str) -> str:
    """JSON indented two spaces a level; text that does not parse stays as it is."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def highlighted(text: str, filename: str) -> SafeString:
    """The text as HTML spans (Pygments' short classes: k keyword, s1 string, c1 comment, nt
    key, …) for a <pre>; files of other kinds (dbt.log) only escaped."""
    suffix = PurePosixPath(filename).suffix
    if suffix == ".json":
        text = pretty_json(text)
    lexer = LEXERS.get(suffix, TextLexer)(stripnl=False)
    return mark_safe(highlight(text, lexer, HtmlFormatter(nowrap=True)))  # noqa: S308 - Pygments escapes the text
