"""Django-free: does a selector match anything in a project's manifest?

dbt's selector grammar: space-separated unions of comma-separated intersections of terms;
a term is `[@][N+]method:value[+N]`, the method defaulting to a path (if the value looks
like one) or the fully qualified name. We check that every term matches at least one node;
graph operators only widen a match, so they are stripped first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

_GRAPH_OPS = re.compile(r"^@?(\d*\+)?(?P<term>.*?)(\+\d*)?$")
_SECTIONS = ("nodes", "sources", "exposures", "metrics", "semantic_models", "saved_queries", "unit_tests")
_UNSUPPORTED = {"state", "result", "source_status"}
_RESOURCE_TYPES = {
    "model",
    "seed",
    "snapshot",
    "test",
    "source",
    "analysis",
    "exposure",
    "metric",
    "semantic_model",
    "saved_query",
    "unit_test",
}


def load_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _nodes(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in _SECTIONS:
        yield from (manifest.get(section) or {}).values()


def _fqn_matches(node: dict[str, Any], value: str) -> bool:
    fqn = node.get("fqn") or []
    parts = value.split(".")
    if len(parts) == 1 and fnmatchcase(node.get("name", ""), value):
        return True
    for start in (0, 1):
        window = fqn[start : start + len(parts)]
        if len(window) == len(parts) and all(fnmatchcase(a, b) for a, b in zip(window, parts, strict=True)):
            return True
    return False


def _path_matches(node: dict[str, Any], value: str) -> bool:
    path = node.get("original_file_path") or ""
    value = value.rstrip("/")
    return path == value or path.startswith(value + "/") or fnmatchcase(path, value)


def _term_matches(node: dict[str, Any], method: str, value: str) -> bool:
    if method == "fqn":
        return _fqn_matches(node, value)
    if method in ("path", "file"):
        return _path_matches(node, value) or (
            method == "file" and Path(node.get("original_file_path", "")).name == value
        )
    if method == "tag":
        return any(fnmatchcase(tag, value) for tag in node.get("tags") or [])
    if method == "package":
        return fnmatchcase(node.get("package_name", ""), value)
    if method == "resource_type":
        return node.get("resource_type") == value
    if method == "source":
        if node.get("resource_type") != "source":
            return False
        name = f"{node.get('source_name')}.{node.get('name')}"
        return fnmatchcase(node.get("source_name", ""), value) or fnmatchcase(name, value)
    if method in ("exposure", "metric", "semantic_model", "saved_query", "unit_test"):
        return node.get("resource_type") == method and fnmatchcase(node.get("name", ""), value)
    if method == "test_name":
        return fnmatchcase((node.get("test_metadata") or {}).get("name", ""), value)
    if method == "test_type":
        return node.get("resource_type") in ("test", "unit_test")
    if method.startswith("config."):
        config_value = (node.get("config") or {}).get(method.removeprefix("config."))
        candidates = config_value if isinstance(config_value, list) else [config_value]
        return any(str(c).lower() == value.lower() for c in candidates if c is not None)
    return False


def unmatched_terms(manifest: dict[str, Any], selector: str) -> list[str]:
    """The selector terms that match no node (empty when everything resolves). A term with an
    unsupported method is reported too."""
    nodes = list(_nodes(manifest))
    problems: list[str] = []
    for union_part in selector.split():
        for raw in union_part.split(","):
            term = _GRAPH_OPS.match(raw).group("term")
            if not term:
                problems.append(raw)
                continue
            method, _, value = term.partition(":") if ":" in term else ("", "", term)
            if not method:
                looks_like_path = "/" in value or value.endswith((".sql", ".py", ".csv", ".yml"))
                method = "path" if looks_like_path else "fqn"
            if method in _UNSUPPORTED:
                problems.append(raw)
                continue
            if method == "resource_type" and value not in _RESOURCE_TYPES:
                problems.append(raw)
                continue
            if not any(_term_matches(node, method, value) for node in nodes):
                problems.append(raw)
    return problems
