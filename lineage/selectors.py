"""dbt's node selection (`dbt ls --select …`) answered in PostgreSQL over one snapshot.

Semantics follow dbt-core's graph/selector*.py: a space separates a union, a comma an
intersection; each criterion is `[@][N+]method:value[+N]`; a bare value is a path when it
contains "/", a file name when it ends in .sql/.py/.csv, else an fqn. Every criterion then
takes in the tests that directly depend on what it selected (dbt's default "eager"
indirect selection), and the answer is limited to the resource types `dbt ls` lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase as fnmatch

from django.db import connection

from lineage.graph import walk
from lineage.models import Edge, Node

# dbt-core's RAW_SELECTOR_PATTERN.
_SPEC = re.compile(
    r"\A(?P<childrens_parents>@)?(?P<parents>(?P<parents_depth>\d*)\+)?"
    r"((?P<method>[\w.]+):)?(?P<value>.*?)(?P<children>\+(?P<children_depth>\d*))?\Z"
)
METHODS = ("fqn", "path", "file", "tag", "resource_type", "package", "source", "config")
RESOURCE_TYPES = (
    "model", "analysis", "test", "snapshot", "operation", "seed", "rpc", "sql_operation", "doc", "source", "macro",
    "exposure", "metric", "group", "saved_query", "semantic_model", "unit_test", "fixture", "function",
)  # fmt: skip
# What `dbt ls` lists when no --resource-type is given (dbt-core task/list.py).
LS_RESOURCE_TYPES = (
    "model", "snapshot", "seed", "test", "source", "exposure", "metric", "saved_query", "semantic_model",
    "unit_test", "function",
)  # fmt: skip
INDIRECTLY_SELECTED_TYPES = ("test", "unit_test")
# manifest.nodes plus sources: what dbt's config: method looks at.
CONFIGURABLE_TYPES = ("model", "seed", "snapshot", "test", "analysis", "operation", "sql_operation", "source")
_GLOB_CHARS = ("*", "?", "[", "]")
_MAX_SELECTOR_LENGTH = 2000


class SelectorError(ValueError):
    """A selector the portal cannot answer; the message names the problem."""


@dataclass(frozen=True)
class Criterion:
    raw: str
    method: str
    argument: str  # config.<argument>
    value: str
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    childrens_parents: bool = False


def _default_method(value: str) -> str:
    if "/" in value:
        return "path"
    if value.lower().endswith((".sql", ".py", ".csv")):
        return "file"
    return "fqn"


def parse_criterion(raw: str) -> Criterion:
    match = _SPEC.match(raw)
    if match is None or not match.group("value"):
        raise SelectorError(f'Invalid selector "{raw}": no search value.')
    method_text = match.group("method")
    if method_text is None:
        method, argument = _default_method(match.group("value")), ""
    else:
        method, _, argument = method_text.partition(".")
        if method not in METHODS:
            raise SelectorError(
                f'Invalid selector "{raw}": "{method}" is not a selector method the portal knows '
                f"({', '.join(m + ':' for m in METHODS)})."
            )
        if (method == "config") != bool(argument):
            raise SelectorError(f'Invalid selector "{raw}": use config.<key>:<value>, e.g. config.materialized:view.')
    if match.group("childrens_parents") and match.group("parents"):
        raise SelectorError(f'Invalid selector "{raw}": the "@" and "+" prefixes cannot be combined.')
    value = match.group("value")
    if method == "resource_type" and value not in RESOURCE_TYPES:
        raise SelectorError(f'Invalid selector "{raw}": unknown resource type "{value}".')
    if method == "source" and len(value.split(".")) > 3:
        raise SelectorError(
            f'Invalid selector "{raw}": use source:<source>, <source>.<table> or <package>.<source>.<table>.'
        )
    return Criterion(
        raw=raw,
        method=method,
        argument=argument,
        value=value,
        parents=bool(match.group("parents")),
        parents_depth=int(match.group("parents_depth")) if match.group("parents_depth") else None,
        children=bool(match.group("children")),
        children_depth=int(match.group("children_depth")) if match.group("children_depth") else None,
        childrens_parents=bool(match.group("childrens_parents")),
    )


def parse_selector(text: str) -> list[list[Criterion]]:
    """A union (space) of intersections (comma) of criteria."""
    if len(text) > _MAX_SELECTOR_LENGTH:
        raise SelectorError(f"The selector is longer than {_MAX_SELECTOR_LENGTH} characters.")
    if any(ord(ch) < 32 for ch in text if ch != " "):
        raise SelectorError("The selector contains control characters.")
    union = [[parse_criterion(part) for part in spec.split(",")] for spec in text.split(" ") if spec]
    if not union:
        raise SelectorError("The selector is empty.")
    return union


def glob_regex(pattern: str, *, path: bool = False) -> str:
    """A PostgreSQL regular expression (anchored) for an fnmatch / pathlib glob pattern."""
    out, i = ["^"], 0
    any_char = "[^/]" if path else "."
    while i < len(pattern):
        ch = pattern[i]
        if path and pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if path and pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append(any_char + "*")
        elif ch == "?":
            out.append(any_char)
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(r"\[")
            else:
                body = pattern[i + 1 : end]
                body = "^" + body[1:] if body.startswith("!") else body
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _has_glob(value: str) -> bool:
    return any(ch in value for ch in _GLOB_CHARS)


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_NODE = Node._meta.db_table
_EDGE = Edge._meta.db_table


def _fqn_matches(fqn: list[str], selector: str) -> bool:
    """dbt-core's is_selected_node for unversioned nodes."""
    if fqn and fqn[-1] == selector:
        return True
    flat = [item for segment in fqn for item in segment.split(".")]
    parts = selector.split(".")
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if _has_glob(part):
            if fnmatch(".".join(flat[i:]), ".".join(parts[i:])):
                return True
            return "." not in selector and bool(fqn) and fnmatch(fqn[-1], selector)
        if flat[i] != part:
            return False
    return True


def _search_fqn_glob(snapshot_id: int, selector: str) -> set[str]:
    rows = Node.objects.filter(snapshot_id=snapshot_id).exclude(resource_type="source").values_list("unique_id", "fqn")
    return {uid for uid, fqn in rows if _fqn_matches(fqn, selector) or _fqn_matches(fqn[1:], selector)}


def _search(snapshot_id: int, c: Criterion) -> set[str]:
    """The nodes a criterion's method matches, before graph operators."""
    where: str
    params: list
    value = c.value
    if c.method == "fqn":
        if _has_glob(value):
            return _search_fqn_glob(snapshot_id, value)
        parts = value.split(".")
        flat = "string_to_array(array_to_string(fqn, '.'), '.')"
        # dbt matches the fqn, and the fqn without its package (across packages).
        where = (
            f"(resource_type <> 'source' AND "
            f"(fqn[cardinality(fqn)] = %s OR ({flat})[1:%s] = %s OR ({flat})[2:%s] = %s))"
        )
        params = [value, len(parts), parts, len(parts) + 1, parts]
    elif c.method == "tag":
        if _has_glob(value):
            where, params = "EXISTS (SELECT 1 FROM unnest(tags) AS t WHERE t ~ %s)", [glob_regex(value) + "$"]
        else:
            where, params = "tags @> ARRAY[%s]::text[]", [value]
    elif c.method == "resource_type":
        where, params = "resource_type = %s", [value]
    elif c.method == "package":
        where, params = "package_name ~ %s", [glob_regex(value) + "$"]
    elif c.method == "config":
        where = "resource_type = ANY(%s) AND (config ->> %s = %s OR config -> %s @> to_jsonb(%s::text))"
        params = [list(CONFIGURABLE_TYPES), c.argument, value, c.argument, value]
    elif c.method == "source":
        parts = value.split(".")
        package, source, table = ["*", *parts, "*"] if len(parts) == 1 else ["*", *parts] if len(parts) == 2 else parts
        where = "resource_type = 'source' AND package_name ~ %s AND fqn[cardinality(fqn) - 1] ~ %s AND name ~ %s"
        params = [glob_regex(package) + "$", glob_regex(source) + "$", glob_regex(table) + "$"]
    elif c.method == "file":
        basename = "regexp_replace(original_file_path, '^.*/', '')"
        where = f"({basename} ~ %s OR regexp_replace({basename}, '\\.[^.]*$', '') ~ %s)"
        params = [glob_regex(value) + "$", glob_regex(value) + "$"]
    else:  # path: a file or folder relative to the project root, pathlib glob rules
        pattern = value.removeprefix("./").rstrip("/") or "."
        if pattern == ".":
            where, params = "original_file_path <> ''", []
        else:
            exact = glob_regex(pattern, path=True)
            where = "(original_file_path ~ %s OR patch_path ~ %s OR original_file_path ~ %s)"
            params = [exact + "$", exact + "$", exact + "/"]
    sql = f"SELECT unique_id FROM {_NODE} WHERE snapshot_id = %s AND {where}"
    return {row[0] for row in _rows(sql, [snapshot_id, *params])}


def _attached_tests(snapshot_id: int, selected: set[str]) -> set[str]:
    if not selected:
        return set()
    sql = f"""
        SELECT DISTINCT e.child FROM {_EDGE} e
        JOIN {_NODE} n ON n.snapshot_id = e.snapshot_id AND n.unique_id = e.child
        WHERE e.snapshot_id = %s AND e.parent = ANY(%s) AND n.resource_type = ANY(%s)"""
    return {row[0] for row in _rows(sql, [snapshot_id, list(selected), list(INDIRECTLY_SELECTED_TYPES)])}


def _select_criterion(snapshot_id: int, c: Criterion) -> set[str]:
    selected = _search(snapshot_id, c)
    collected = set(selected)
    if c.childrens_parents:
        family = selected | set(walk(snapshot_id, selected, upstream=False, depth=None))
        collected |= family | set(walk(snapshot_id, family, upstream=True, depth=None))
    if c.parents:
        collected |= set(walk(snapshot_id, selected, upstream=True, depth=c.parents_depth))
    if c.children:
        collected |= set(walk(snapshot_id, selected, upstream=False, depth=c.children_depth))
    return collected | _attached_tests(snapshot_id, collected)


def select(snapshot_id: int, text: str, resource_types: tuple[str, ...] = LS_RESOURCE_TYPES) -> list[str]:
    """The unique_ids `dbt ls --select <text>` lists, sorted."""
    union: set[str] = set()
    for intersection in parse_selector(text):
        sets = [_select_criterion(snapshot_id, c) for c in intersection]
        union |= set.intersection(*sets)
    if not union:
        return []
    kept = Node.objects.filter(snapshot_id=snapshot_id, unique_id__in=union, resource_type__in=resource_types)
    return sorted(kept.values_list("unique_id", flat=True))
