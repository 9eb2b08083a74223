"""Django-free: dbt's node selection, one engine for the trigger check and the select API.

Semantics are dbt-core 1.11's (graph/selector_spec.py, selector_methods.py, selector.py): a
space separates a union, a comma an intersection; each criterion is `[@][N+]method:value[+N]`
and a bare value is a path when it holds "/", a file name when it ends in .sql/.py/.csv, else
an fqn. Each criterion takes in the tests that depend on what it selected, as its indirect
selection says (eager by default; cautious, buildable, empty), and the answer is limited to what
`dbt ls` lists (its resource types). YAML selectors (selectors.yml, as dbt wrote them into the
manifest) become the same criteria, combined by union, intersection and exclude. `state:`
compares with a second manifest (dbt's --state; dbtlib/state.py) and is refused without one.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import translate
from functools import cached_property, lru_cache, reduce
from itertools import chain, compress, repeat
from operator import and_, attrgetter, or_
from pathlib import PurePosixPath
from typing import Any

from dbtlib.errors import DbtSelectorError
from dbtlib.manifest import LS_RESOURCE_TYPES, TEST_TYPES, DbtNode, Manifest, ResourceType, gc_paused
from dbtlib.state import STATE_VALUES, state_search

MAX_SELECTOR_LENGTH = 2000
MAX_SELECTOR_TERMS = 50  # criteria in one selector (union and intersections together)
# Characters a selector may hold: names, globs, methods, graph operators, paths, unions/intersections.
_SELECTOR_CHARS = re.compile(r"^[A-Za-z0-9_.:+*@/,=\-\[\]? ]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL = re.compile(r"[;&|$`<>(){}!'\"\\~#%^]")


def check_selector(field: str, value: str) -> str:
    """Syntax only; whether the selector matches nodes is checked against the manifest."""
    value = value.strip()
    if len(value) > MAX_SELECTOR_LENGTH:
        raise _invalid(field, f"selector is longer than {MAX_SELECTOR_LENGTH} characters")
    if _CONTROL.search(value):
        raise _invalid(field, "selector contains a control character")
    shell = _SHELL.search(value)
    if shell:
        raise _invalid(field, f"selector contains the character {shell.group()!r}, which is not allowed")
    if not _SELECTOR_CHARS.match(value):
        raise _invalid(field, "selector contains characters that are not allowed")
    for token in value.split():
        if token.startswith("-"):
            raise _invalid(field, f"selector term {token!r} starts with '-' (it would be read as an option)")
    return " ".join(value.split())


def _invalid(field: str, message: str) -> DbtSelectorError:
    return DbtSelectorError(message, field)


# --- the engine: dbt-core 1.11's node selection over a Manifest ------------------------------

# dbt-core's RAW_SELECTOR_PATTERN.
_SPEC = re.compile(
    r"\A(?P<childrens_parents>@)?(?P<parents>(?P<parents_depth>\d*)\+)?"
    r"((?P<method>[\w.]+):)?(?P<value>.*?)(?P<children>\+(?P<children_depth>\d*))?\Z"
)
SUPPORTED_METHODS = (
    "fqn", "path", "file", "tag", "resource_type", "package", "source", "config", "test_name", "test_type",
    "exposure", "metric", "semantic_model", "saved_query", "unit_test", "state",
)  # fmt: skip
# dbt methods that need more than a manifest (results) or that the portal does not answer.
UNSUPPORTED_METHODS = ("group", "access", "result", "source_status", "version")
NO_STATE = "state: selection needs a comparison manifest (--state)"
_GLOB_CHARS = ("*", "?", "[", "]")
_NAMED_SECTION = {
    "exposure": "exposures", "metric": "metrics", "semantic_model": "semantic_models", "saved_query": "saved_queries",
    "unit_test": "unit_tests",
}  # fmt: skip
# --indirect-selection: which tests adjacent to what is selected are taken in.
INDIRECT_SELECTIONS = ("eager", "cautious", "buildable", "empty")
_TEST_TYPES = {"generic": ("generic",), "schema": ("generic",), "data": ("generic", "singular")}


@dataclass(frozen=True)
class Criterion:
    """One `[@][N+]method[.argument…]:value[+N]` term."""

    raw: str
    method: str
    arguments: tuple[str, ...]
    value: str
    parents: bool = False
    parents_depth: int | None = None
    children: bool = False
    children_depth: int | None = None
    childrens_parents: bool = False
    indirect_selection: str = "eager"  # which adjacent tests it takes in (INDIRECT_SELECTIONS)


@dataclass(frozen=True)
class Group:
    """dbt's SelectionUnion, SelectionIntersection, SelectionDifference (kind "union",
    "intersection", "difference"), or every node ("all": no --select)."""

    kind: str
    components: tuple[Criterion | Group, ...] = ()
    indirect_selection: str = "eager"


def _refuse(field: str, raw: str, why: str) -> DbtSelectorError:
    return _invalid(field, f"selector {raw!r} is not valid: {why}")


def _default_method(value: str) -> str:
    """dbt-core's SelectionCriteria.default_method."""
    if "/" in value:
        return "path"
    if value.lower().endswith((".sql", ".py", ".csv")):
        return "file"
    return "fqn"


def _check_value(field: str, raw: str, method: str, value: str) -> None:
    """The values dbt itself refuses when it searches (here: before searching)."""
    if method == "resource_type" and value not in set(ResourceType):
        raise _refuse(field, raw, f"unknown resource type {value!r}")
    if method == "source" and len(value.split(".")) > 3:
        raise _refuse(field, raw, "use source:<source>, <source>.<table> or <package>.<source>.<table>")
    if method in _NAMED_SECTION and len(value.split(".")) > 2:
        raise _refuse(field, raw, f"use {method}:<name> or {method}:<package>.<name>")
    if method == "state" and value not in STATE_VALUES:
        raise _refuse(field, raw, f"state takes {', '.join(STATE_VALUES)}")
    if method == "test_type" and _test_type_kinds(value) is None:
        raise _refuse(field, raw, 'test_type is "generic", "singular", "unit" or "data"')
    if method == "path":
        pattern = PurePosixPath(value)
        if pattern.is_absolute() or not pattern.parts:
            raise _refuse(field, raw, "a path is relative to the project root, e.g. path:models/staging")


def parse_criterion(raw: str, field: str = "select", indirect_selection: str = "eager") -> Criterion:
    match = _SPEC.match(raw)
    if match is None:  # pragma: no cover - the pattern matches any string without a newline
        raise _refuse(field, raw, "not a selector")
    if match.group("childrens_parents") and match.group("children"):
        raise _refuse(field, raw, 'the "@" prefix and the "+" suffix cannot be combined')
    return _criterion(
        field,
        raw,
        match.group("method"),
        match.group("value"),
        parents=bool(match.group("parents")),
        parents_depth=int(match.group("parents_depth")) if match.group("parents_depth") else None,
        children=bool(match.group("children")),
        children_depth=int(match.group("children_depth")) if match.group("children_depth") else None,
        childrens_parents=bool(match.group("childrens_parents")),
        indirect_selection=indirect_selection,
    )


def _criterion(field: str, raw: str, method_text: str | None, value: str, **graph: Any) -> Criterion:
    """A criterion from its parts (a CLI term's or a YAML selector's), refused as dbt would."""
    method, arguments = _default_method(value), tuple[str, ...]()
    if method_text is not None:
        method, *rest = method_text.split(".")
        arguments = tuple(rest)
        if method not in SUPPORTED_METHODS:
            kind = (
                "a dbt selector method the portal does not answer"
                if method in UNSUPPORTED_METHODS
                else "not a selector method"
            )
            raise _refuse(field, raw, f'"{method}" is {kind} (supported: {", ".join(SUPPORTED_METHODS)})')
    _check_value(field, raw, method, value)
    _check_glob(field, raw, value)
    return Criterion(raw=raw, method=method, arguments=arguments, value=value, **graph)


def _check_glob(field: str, raw: str, value: str) -> None:
    """Bracket expressions fnmatch would read as "match nothing" or as a literal "[":
    refused, so a typo is not a silent empty selection."""
    i = 0
    while (i := value.find("[", i)) != -1:
        end = value.find("]", i + 2)
        if end == -1:
            raise _refuse(field, raw, f"the '[' at position {i + 1} of {value!r} is not closed")
        body = value[i + 1 : end].lstrip("!")
        for lo, hi in re.findall(r"(.)-(.)", body):
            if lo > hi:
                raise _refuse(field, raw, f"the range {lo}-{hi} in {value!r} is reversed (write {hi}-{lo})")
        i = end + 1


def parse_selector(
    text: str, field: str = "select", indirect_selection: str = "eager"
) -> tuple[tuple[Criterion, ...], ...]:
    """A union (space) of intersections (comma) of criteria; DbtSelectorError when invalid."""
    text = check_selector(field, text)
    terms = sum(len(spec.split(",")) for spec in text.split())
    if terms > MAX_SELECTOR_TERMS:
        raise _invalid(field, f"selector has {terms} terms; at most {MAX_SELECTOR_TERMS} are allowed")
    return tuple(
        tuple(parse_criterion(part, field, indirect_selection) for part in spec.split(",")) for spec in text.split()
    )


@lru_cache(maxsize=4096)
def _pattern(pattern: str) -> Any:
    return re.compile(translate(pattern)).match


def fnmatch(name: str, pattern: str) -> bool:
    """fnmatch.fnmatch on POSIX (case-sensitive), with the compiled pattern kept."""
    return name == pattern or _pattern(pattern)(name) is not None


class _Index:
    """What selection reads of a manifest over and over, computed once per manifest, so that a
    selection costs in proportion to its answer rather than to the manifest. Sets of nodes are
    bitmasks (ints: bit p for the node at position p of the sorted unique_ids): set operations
    over a hundred thousand nodes take microseconds; the graph and each node's tests are
    positions too. Built at once: the graph, the tests and the kinds (what every selection
    reads); the rest the first time a method needs it (tags, test names, fqns, paths)."""

    def __init__(self, manifest: Manifest) -> None:
        self.order = sorted(manifest.nodes)  # position → unique_id
        self.size = len(self.order)
        self.position = dict(zip(self.order, range(self.size), strict=True))
        self.nodes = list(map(manifest.nodes.__getitem__, self.order))  # position → node
        # The graph (Manifest.parents and children), in positions, from the edges between two nodes.
        self.parents: list[list[int]] = [[] for _ in self.order]
        self.children: list[list[int]] = [[] for _ in self.order]
        parents, children = self.parents, self.children
        ends = zip(*manifest.edges, strict=True) if manifest.edges else ((), ())
        up: list[Any]  # positions, None for an end that is not a node here
        down: list[Any]
        up, down = (list(map(self.position.get, column)) for column in ends)
        if None in up or None in down:  # an edge to something not a node here: left out
            kept = [(p, c) for p, c in zip(up, down, strict=True) if p is not None and c is not None]
            up, down = [p for p, _ in kept], [c for _, c in kept]
        # Appended in C (a loop in Python: 0.2 s at 165,000 edges).
        deque(map(list.append, map(parents.__getitem__, down), up), maxlen=0)
        deque(map(list.append, map(children.__getitem__, up), down), maxlen=0)
        kinds: dict[str, list[int]] = defaultdict(list)  # one pass (one per kind: 3 times as long)
        for p, kind in enumerate(map(attrgetter("resource_type"), self.nodes)):
            kinds[kind].append(p)
        self.by_type = {kind: self.mask(found) for kind, found in kinds.items()}
        self.in_nodes = 0  # what the manifest's "nodes" section holds (not sources, exposures, …)
        for kind, found in kinds.items():
            if self.nodes[found[0]].section == "nodes":
                self.in_nodes |= self.by_type[kind]
        self.tests_of: list[list[int]] = [[] for _ in self.order]  # node → the tests that depend on it
        tests_of = self.tests_of
        for test in chain.from_iterable(kinds.get(kind, ()) for kind in TEST_TYPES):
            for parent in parents[test]:
                tests_of[parent].append(test)
        self._matching: dict[tuple[str, str], int] = {}

    @cached_property
    def by_tag(self) -> dict[str, list[int]]:
        """tag → nodes."""
        with gc_paused():
            by_tag = defaultdict(list)
            for p, node in enumerate(self.nodes):
                for tag in node.tags:
                    by_tag[tag].append(p)
            return by_tag

    @cached_property
    def by_test_name(self) -> dict[str, list[int]]:
        """A generic test's test_name, a unit test's name → tests."""
        by_name = defaultdict(list)
        for test in chain.from_iterable(map(self._positions, TEST_TYPES)):
            node = self.nodes[test]
            if node.resource_type == ResourceType.UNIT_TEST:
                by_name[node.name].append(test)
            elif node.test_name:
                by_name[node.test_name].append(test)
        return by_name

    def matching(self, method: str, value: str) -> int:
        """The nodes of a tag (method "tag") or tests of a test name ("test_name") that fnmatch
        matches with `value`, kept for the next selection of it (of the last 256 values)."""
        if (method, value) not in self._matching:
            by_key = self.by_tag if method == "tag" else self.by_test_name
            keys = [value] if not any(ch in value for ch in _GLOB_CHARS) else list(by_key)
            if len(self._matching) >= 256:
                self._matching.clear()
            found = chain.from_iterable(by_key.get(key, ()) for key in keys if fnmatch(key, value))
            self._matching[method, value] = self.mask(found)
        return self._matching[method, value]

    def _positions(self, kind: str) -> Iterator[int]:
        return self.pick(range(self.size), self.by_type.get(kind, 0))

    @cached_property
    def fqns(self) -> _Fqns:
        with gc_paused():
            return _Fqns(self.order, self.nodes)

    @cached_property
    def paths(self) -> _Paths:
        with gc_paused():
            return _Paths(self.order, self.nodes)

    def mask(self, positions: Iterable[int]) -> int:
        """The set of these positions, in C: a bytearray of flags, read as a binary number."""
        flags = bytearray(self.size)
        deque(map(flags.__setitem__, positions, repeat(1)), maxlen=0)
        return int(flags.translate(_DIGITS)[::-1], 2) if self.size else 0

    def flags(self, mask: int) -> bytes:
        """One byte per position: 1 where the mask holds it, else 0."""
        return format(mask, "b")[::-1].ljust(self.size, "0").encode().translate(_FLAGS)

    def of(self, uids: Iterable[str]) -> int:
        return self.mask(map(self.position.__getitem__, uids))

    def uids(self, mask: int) -> list[str]:
        """The nodes of a mask, sorted."""
        return list(self.pick(self.order, mask))

    def adjacent(self, adjacency: list[list[int]], mask: int) -> int:
        """Every node adjacent (in `adjacency`: parents, children or tests_of) to one of the mask's."""
        return self.mask(chain.from_iterable(self.pick(adjacency, mask)))

    def pick(self, items: Sequence[Any], mask: int) -> Iterator[Any]:
        """The items (one per position) at the mask's positions: a few found by searching its
        flags, many by walking them."""
        flags = self.flags(mask)
        if mask.bit_count() * 64 > self.size:
            return compress(items, flags)
        found, at = [], flags.find(1)
        while at != -1:
            found.append(at)
            at = flags.find(1, at + 1)
        return map(items.__getitem__, found)

    def of_types(self, types: Iterable[str]) -> int:
        return reduce(or_, (self.by_type.get(t, 0) for t in types), 0)


_DIGITS = bytes.maketrans(b"\x00\x01", b"01")
_FLAGS = bytes.maketrans(b"01", b"\x00\x01")


class _Fqns:
    """The fqn method's index: unversioned non-sources by fqn[-1], and by their fqn joined at
    dots, with and without its package (sorted too, for prefix and glob searches)."""

    def __init__(self, order: list[str], nodes: list[DbtNode]) -> None:
        self.by_leaf: dict[str, list[str]] = defaultdict(list)
        self.by_name: dict[str, list[str]] = defaultdict(list)
        self.versioned: list[tuple[str, tuple[str, ...]]] = []  # versioned non-sources: (unique_id, fqn)
        for uid, node in zip(order, nodes, strict=True):
            fqn = node.fqn
            if node.resource_type == ResourceType.SOURCE or not fqn:
                continue
            if node.version:
                self.versioned.append((uid, fqn))
                continue
            self.by_leaf[fqn[-1]].append(uid)
            self.by_name[".".join(fqn)].append(uid)
            if len(fqn) > 1:
                self.by_name[".".join(fqn[1:])].append(uid)
        self.names, self.leaves = sorted(self.by_name), sorted(self.by_leaf)


class _Paths:
    """The path method's index: nodes by original_file_path and patch_path; per folder of
    original_file_paths, what the method counts as its folders (str of PurePosixPath.parents)
    and its nodes; every file and folder, split."""

    def __init__(self, order: list[str], nodes: list[DbtNode]) -> None:
        self.by_file: dict[str, list[str]] = defaultdict(list)
        by_folder: dict[str, list[str]] = defaultdict(list)  # original_file_path up to its last "/" → nodes
        first: dict[str, str] = {}  # … → the first of its paths
        for uid, node in zip(order, nodes, strict=True):
            if path := node.original_file_path:
                self.by_file[path].append(uid)
                if node.patch_path:
                    self.by_file[node.patch_path].append(uid)
                cut = path.rfind("/") + 1
                # Files of one folder share their folders; a path ending in "/" or "." is its own case.
                folder = path[:cut] if path[cut:] not in ("", ".") else f"{path}\0"
                by_folder[folder].append(uid)
                first.setdefault(folder, path)
        self.folders = [(_folders(_parts(first[folder])), uids) for folder, uids in by_folder.items()]
        files = {_parts(path) for path in self.by_file}
        self.files = frozenset(files)
        self.dirs = frozenset(d[:i] for d in {f[:-1] for f in files} for i in range(len(d) + 1))


def _parts(path: str) -> tuple[str, ...]:
    """PurePosixPath(path).parts, without building a path for the usual relative one (a
    100,000-node manifest indexes 200,000 paths)."""
    parts = tuple(path.split("/"))
    return PurePosixPath(path).parts if "" in parts or "." in parts else parts


def _folders(parts: tuple[str, ...]) -> frozenset[str]:
    """The str() of each of PurePosixPath(path).parents, from the relative path's parts."""
    if parts[:1] == ("/",):
        return frozenset(str(d) for d in PurePosixPath(*parts).parents)
    return frozenset("/".join(parts[:i]) or "." for i in range(len(parts)))


@lru_cache(maxsize=8)
def _index(manifest: Manifest) -> _Index:
    with gc_paused():
        return _Index(manifest)


def prepare(manifest: Manifest) -> None:
    """Build the manifest's selection index now (else its first selection does)."""
    _index(manifest)


def _fqn_is_selected(fqn: tuple[str, ...], flat: tuple[str, ...], selector: str, versioned: bool) -> bool:
    """dbt-core's is_selected_node (`flat`: the fqn's parts split at dots)."""
    if not fqn:
        return False
    if versioned:
        if len(fqn) > 1 and fqn[-2] == selector:
            return True
        if "_".join(fqn[-2:]) == "_".join(selector.split(".")[-2:]):
            return True
    elif fqn[-1] == selector:
        return True
    parts = selector.split(".")
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if any(ch in part for ch in _GLOB_CHARS):
            if fnmatch(".".join(flat[i:]), ".".join(parts[i:])):
                return True
            if "." not in selector:
                return fnmatch(fqn[-2] if versioned and len(fqn) > 1 else fqn[-1], selector)
            return False
        if flat[i] != part:
            return False
    return True


def _fqn_matches(fqn: tuple[str, ...], selector: str, versioned: bool) -> bool:
    """dbt matches the fqn, and the fqn without its package (nodes of any package)."""
    return _fqn_is_selected(fqn, _flat(fqn), selector, versioned) or _fqn_is_selected(
        fqn[1:], _flat(fqn[1:]), selector, versioned
    )


def _flat(fqn: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(item for segment in fqn for item in segment.split("."))


def _fqn_search(manifest: Manifest, value: str) -> set[str]:
    """_fqn_matches over every non-source node, read from the index: for an unversioned node
    (flat: its fqn's parts split at dots, joined again: the same text) a value without
    wildcards is its name or a leading run of its (package-less) flat parts; with "*" or "?"
    and no dot, a match of the joined fqn (or package-less fqn) or of the name; with a dot, of
    the joined fqn or package-less fqn (or its name exactly). A "[" (which may hold a dot)
    and versioned nodes take is_selected_node itself."""
    index = _index(manifest).fqns
    found = {uid for uid, fqn in index.versioned if _fqn_matches(fqn, value, True)}
    if "[" in value:
        return found | {
            uid
            for uid, n in manifest.nodes.items()
            if n.section != "sources" and not n.version and _fqn_matches(n.fqn, value, False)
        }
    found.update(index.by_leaf.get(value, ()), index.by_name.get(value, ()))
    if not any(ch in value for ch in _GLOB_CHARS):
        return found | _union_of(index.by_name, _starting(index.names, f"{value}."))
    found |= _union_of(index.by_name, _matching(index.names, value))
    if "." not in value:
        found |= _union_of(index.by_leaf, _matching(index.leaves, value))
    return found


def _starting(keys: list[str], prefix: str) -> list[str]:
    """The keys (sorted) that start with `prefix`: those from it up to the text that follows
    every such key (the prefix with its last character's successor)."""
    start = bisect_left(keys, prefix)
    if not prefix or prefix[-1] == chr(sys.maxunicode):
        return [key for key in keys[start:] if key.startswith(prefix)]
    return keys[start : bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1), start)]


def _matching(keys: list[str], pattern: str) -> list[str]:
    """The keys (sorted) fnmatch matches with `pattern`: only those that start with its text
    before the first wildcard can."""
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    candidates = _starting(keys, literal) if literal else keys
    if pattern == f"{literal}*":
        return candidates
    return [key for key in candidates if fnmatch(key, pattern)]


def _glob_parts(parts: tuple[str, ...], pattern: tuple[str, ...], is_dir: bool) -> bool:
    """pathlib (3.11) glob of one candidate path: "**" spans directories, others one name."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest and not is_dir:
            return False
        return any(_glob_parts(parts[i:], rest, is_dir) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch(parts[0], head) and _glob_parts(parts[1:], rest, is_dir)


def _path_search(manifest: Manifest, value: str) -> set[str]:
    """dbt globs the pattern under the project root, then takes nodes whose file, YAML file or
    one of whose folders it found; the manifest's own paths stand in for the file tree."""
    index, pattern = _index(manifest).paths, PurePosixPath(value).parts
    if any(ch in part for part in pattern for ch in _GLOB_CHARS):
        found = {"/".join(d) or "." for d in index.dirs if _glob_parts(d, pattern, True)}
        if not value.endswith("/"):
            found |= {"/".join(f) for f in index.files if _glob_parts(f, pattern, False)}
    else:  # without wildcards the glob finds the path itself, if it is there
        found = {"/".join(pattern) or "."} if pattern in index.dirs else set()
        if not value.endswith("/") and pattern in index.files:
            found.add("/".join(pattern))
    selected = {uid for place in found for uid in index.by_file.get(place, ())}
    for folders, uids in index.folders:
        if not folders.isdisjoint(found):
            selected.update(uids)
    return selected


def _test_type_kinds(value: str) -> tuple[str, ...] | None:
    """dbt-core's test_type: note its substring checks (`value in "data"`), kept as dbt has them."""
    if value in _TEST_TYPES:
        return _TEST_TYPES[value]
    for word, kinds in (("data", ("generic", "singular")), ("singular", ("singular",)), ("unit", ("unit",))):
        if value in word:
            return kinds
    return None


def _config_matches(config: Any, arguments: tuple[str, ...], selector: str) -> bool:
    """dbt-core's ConfigSelectorMethod: equality with the (nested) config value; true/false
    match booleans; config.severity compares without case."""
    for key in arguments:
        if not isinstance(config, dict) or key not in config:
            return False
        config = config[key]
    boolean = {"true": True, "false": False}.get(selector.lower())
    if arguments == ("severity",) and isinstance(config, str):
        return config.upper() == selector.upper()
    values = config if isinstance(config, list) else [config]
    return any(v == selector or (boolean is not None and v is boolean) for v in values)


def _match(manifest: Manifest, c: Criterion, node: DbtNode) -> bool:  # noqa: PLR0911 - one branch per method
    method, value = c.method, c.value
    if method == "tag":
        return any(fnmatch(tag, value) for tag in node.tags)
    if method == "file":
        name = PurePosixPath(node.original_file_path).name
        return fnmatch(name, value) or fnmatch(PurePosixPath(name).stem, value)
    if method == "package":
        return fnmatch(node.package_name, manifest.project_name if value == "this" else value)
    if method == "resource_type":
        return node.resource_type == value
    if method == "config":
        return node.section in ("nodes", "sources") and _config_matches(dict(node.config), c.arguments, value)
    if method == "source":
        parts = value.split(".")
        package, source, table = (
            ("*", parts[0], "*") if len(parts) == 1 else ("*", *parts) if len(parts) == 2 else parts
        )
        return node.section == "sources" and all(
            fnmatch(have, want)
            for have, want in zip(
                (node.package_name, node.source_name, node.name), (package, source, table), strict=True
            )
        )
    if method in _NAMED_SECTION:
        package, _, name = value.rpartition(".")
        return (
            node.section == _NAMED_SECTION[method]
            and fnmatch(node.package_name, package or "*")
            and fnmatch(node.name, name)
        )
    if method == "test_name":
        if node.resource_type == ResourceType.UNIT_TEST:
            return fnmatch(node.name, value)
        return node.resource_type == ResourceType.TEST and bool(node.test_name) and fnmatch(node.test_name, value)
    if method == "test_type":
        kind: dict[str, str] = {
            ResourceType.UNIT_TEST: "unit",
            ResourceType.TEST: "generic" if node.test_name else "singular",
        }
        return kind.get(node.resource_type, "") in (_test_type_kinds(value) or ())
    return False


def _reach(index: _Index, adjacency: list[list[int]], start: int, depth: int | None) -> int:
    """Nodes reachable from `start` in at most `depth` hops (any number when None)."""
    return _walk(index, adjacency, start, depth)[0]


def _walk(index: _Index, adjacency: list[list[int]], start: int, depth: int | None) -> tuple[int, int]:
    """_reach's nodes, and those it stepped from (all of whose adjacent nodes are among
    `start` and them)."""
    reached = stepped = 0
    frontier, hops = start, 0
    while frontier and (depth is None or hops < depth):
        stepped |= frontier
        frontier = index.adjacent(adjacency, frontier) & ~reached
        reached |= frontier
        hops += 1
    return reached, stepped


def _union_of(groups: Mapping[str, Iterable[str]], keys: Iterable[str]) -> set[str]:
    """The union of groups[key] for each key (none for a missing one), in C: a large
    selection's hundred thousand lookups take tens of milliseconds in a Python loop."""
    return set(chain.from_iterable(filter(None, map(groups.get, keys))))


def _select_criterion(manifest: Manifest, c: Criterion, state: Manifest | None) -> tuple[int, int]:
    """dbt-core's get_nodes_from_criteria and expand_selection: (direct, indirect) nodes, the
    indirect ones being tests held back until all their parents are selected (cautious,
    buildable)."""
    index = _index(manifest)
    if c.method == "state":
        assert state is not None, "select_in_manifest refuses state: without a comparison manifest"
        selected = index.of(state_search(manifest, state, c.value))
    elif c.method == "path":
        selected = index.of(_path_search(manifest, c.value))
    elif c.method == "fqn":
        selected = index.of(_fqn_search(manifest, c.value))
    elif c.method in ("tag", "test_name"):
        selected = index.matching(c.method, c.value)
    else:
        selected = index.of(uid for uid, node in manifest.nodes.items() if _match(manifest, c, node))
    collected = selected
    covered = 0  # collected nodes whose children all are: so are their tests
    if c.childrens_parents:
        below, covered = _walk(index, index.children, selected, None)
        family = selected | below
        collected |= family | _reach(index, index.parents, family, None)
    if c.parents:
        collected |= _reach(index, index.parents, selected, c.parents_depth)
    if c.children:
        below, stepped = _walk(index, index.children, selected, c.children_depth)
        collected |= below
        covered |= stepped
    if c.indirect_selection == "empty":
        return collected, 0
    if c.indirect_selection == "eager":
        return collected | index.adjacent(index.tests_of, collected & ~covered), 0
    tests = index.adjacent(index.tests_of, collected)
    enough = collected
    if c.indirect_selection == "buildable":
        enough = collected | _reach(index, index.parents, collected, None) | index.by_type.get(ResourceType.SOURCE, 0)
    have = index.flags(enough)
    held = index.mask(
        test for test in index.pick(range(index.size), tests) if not all(have[p] for p in index.parents[test])
    )
    return collected | (tests & ~held), held


def _incorporate(manifest: Manifest, direct: int, indirect: int, mode: str) -> int:
    """dbt-core's incorporate_indirect_nodes: held tests whose parents are now all selected."""
    if mode not in ("cautious", "buildable") or direct == indirect:
        return direct
    index = _index(manifest)
    enough = direct if mode == "cautious" else direct | _reach(index, index.parents, direct, None)
    have = bytearray(index.flags(enough))
    taken = []
    for test in index.pick(range(index.size), indirect & index.in_nodes):
        if all(have[p] for p in index.parents[test]):
            taken.append(test)
            if mode == "cautious":  # dbt adds to the very set it compares with
                have[test] = 1
    return direct | index.mask(taken)


def _combine(kind: str, masks: list[int]) -> int:
    if kind == "union":
        return reduce(or_, masks, 0)
    if kind == "intersection":
        return reduce(and_, masks)
    return masks[0] & ~reduce(or_, masks[1:], 0)


def _evaluate(manifest: Manifest, spec: Criterion | Group, state: Manifest | None = None) -> tuple[int, int]:
    """dbt-core's select_nodes_recursively: (direct, indirect) of a criterion or a group."""
    if isinstance(spec, Criterion):
        return _select_criterion(manifest, spec, state)
    if spec.kind == "all":
        return (1 << _index(manifest).size) - 1, 0
    bundles = [_evaluate(manifest, component, state) for component in spec.components]
    if not bundles:
        return 0, 0
    direct = _combine(spec.kind, [d for d, _ in bundles])
    indirect = _combine(spec.kind, [d | i for d, i in bundles])
    return _incorporate(manifest, direct, indirect, spec.indirect_selection), indirect


def cli_spec(select: str, exclude: str = "", indirect_selection: str = "eager") -> Group:
    """dbt-core's parse_difference: --select (everything when empty) minus --exclude, each a
    union of intersections carrying --indirect-selection; the difference itself is eager."""
    check_indirect_selection(indirect_selection)

    def union(text: str, field: str) -> Group:
        terms = parse_selector(text, field, indirect_selection)
        return Group("union", tuple(Group("intersection", t, indirect_selection) for t in terms), indirect_selection)

    include = union(select, "select") if select.strip() else Group("all")
    excluded = union(exclude, "exclude") if exclude.strip() else Group("union")
    return Group("difference", (include, excluded))


def _state_criterion(spec: Criterion | Group) -> Criterion | None:
    """The first `state:` criterion of a spec (None when it has none)."""
    if isinstance(spec, Criterion):
        return spec if spec.method == "state" else None
    return next((found for part in spec.components if (found := _state_criterion(part))), None)


def _refuse_state_without_comparison(spec: Group | Criterion, field: str, selector: str = "") -> None:
    if (found := _state_criterion(spec)) is not None:
        where = f"selector {selector!r} of selectors.yml ({found.raw!r})" if selector else f"selector {found.raw!r}"
        raise _invalid(field, f"{where}: {NO_STATE}")


def check_indirect_selection(value: str, field: str = "indirect_selection") -> str:
    if value not in INDIRECT_SELECTIONS:
        raise _invalid(field, f"indirect selection {value!r} is not one of {', '.join(INDIRECT_SELECTIONS)}")
    return value


# --- YAML selectors (selectors.yml), as dbt-core's graph/cli.py reads them ---------------------


def yaml_selector_spec(
    selectors: Mapping[str, Mapping[str, Any]], name: str, indirect_selection: str = "eager", field: str = "selector"
) -> Criterion | Group:
    """The spec of the project's YAML selector `name` (selectors as dbt wrote them to the
    manifest: name → {"definition", "default", …}); DbtSelectorError naming the selector when
    the project has none of that name or its definition is one dbt or the portal refuses.
    Criteria take `indirect_selection` (the --indirect-selection flag) unless their own
    `indirect_selection` key says otherwise; unions and intersections are eager, as in dbt."""
    check_indirect_selection(indirect_selection, field)
    if name not in selectors:
        known = f"selectors.yml defines: {', '.join(selectors)}" if selectors else "it has no selectors.yml"
        raise _invalid(field, f"the project has no selector {name!r} ({known})")
    parsed: dict[str, Criterion | Group] = {}
    for selector_name, entry in selectors.items():
        reader = _YamlReader(selector_name, dict(parsed), indirect_selection, field)
        parsed[selector_name] = reader.root(entry.get("definition"))
        if selector_name == name:
            break
    return parsed[name]


def default_selector(selectors: Mapping[str, Mapping[str, Any]]) -> str:
    """The name of the selector marked `default: true` ("" when none): dbt selects with it
    when a command has no --select, --exclude or --selector."""
    return next((name for name, entry in selectors.items() if entry.get("default") is True), "")


_GRAPH_KEYS = ("parents", "children", "childrens_parents", "parents_depth", "children_depth")


@dataclass(frozen=True)
class _YamlReader:
    name: str
    known: dict[str, Criterion | Group]  # selectors defined before this one (`method: selector`)
    indirect_selection: str
    field: str

    def refuse(self, why: str) -> DbtSelectorError:
        return _invalid(self.field, f"selector {self.name!r} in selectors.yml is not valid: {why}")

    def root(self, definition: Any) -> Criterion | Group:
        sets = isinstance(definition, dict) and ("union" in definition or "intersection" in definition)
        if sets and len(definition) > 1:
            keys = ",".join(map(str, definition))
            raise self.refuse(f"only a single 'union' or 'intersection' key is allowed at the root; found {keys}")
        return self.read(definition, depth=0)

    def read(self, definition: Any, depth: int) -> Criterion | Group:
        if depth > MAX_SELECTOR_TERMS:
            raise self.refuse("it nests too deeply")
        if isinstance(definition, str):
            try:
                return parse_criterion(definition, self.field, self.indirect_selection)
            except DbtSelectorError as exc:
                raise self.refuse(exc.message) from None
        if not isinstance(definition, dict):
            raise self.refuse(f"expected union, intersection, a string or a mapping, found {definition!r}")
        for kind in ("union", "intersection"):
            if kind in definition:
                include, excluded = self.parts(self.items(definition, kind), depth)
                group = Group(kind, include)
                return group if excluded is None else Group("difference", (group, excluded))
        return self.criterion(definition, depth)

    def items(self, definition: dict[str, Any], key: str) -> list[Any]:
        values = definition[key]
        if not isinstance(values, list):
            raise self.refuse(f'"{key}" must be a list')
        for value in values:
            if not isinstance(value, (dict, str)):
                raise self.refuse(f'"{key}" holds {value!r}: expected a mapping or a string')
        return values

    def parts(self, definitions: list[Any], depth: int) -> tuple[tuple[Criterion | Group, ...], Group | None]:
        include: list[Criterion | Group] = []
        excluded: Group | None = None
        for definition in definitions:
            if isinstance(definition, dict) and "exclude" in definition:
                if excluded is not None:
                    raise self.refuse("a set operator takes one exclude")
                excluded = self.exclusions(definition, depth)
            else:
                include.append(self.read(definition, depth + 1))
        return tuple(include), excluded

    def exclusions(self, definition: dict[str, Any], depth: int) -> Group | None:
        parsed = tuple(self.read(item, depth + 1) for item in self.items(definition, "exclude"))
        return Group("union", parsed) if parsed else None

    def criterion(self, definition: dict[str, Any], depth: int) -> Criterion | Group:
        """dbt-core's parse_dict_definition: {method: value}, or method and value with graph
        operators, indirect_selection and an exclude."""
        excluded = None
        if len(definition) == 1:
            method, value = next(iter(definition.items()))
            fields: dict[str, Any] = {"method": method, "value": value}
        elif definition.get("method") == "selector":
            if definition.get("value") not in self.known:
                raise self.refuse(f"it names the selector {definition.get('value')!r}, not defined before it")
            return self.known[definition["value"]]
        elif "method" in definition and "value" in definition:
            fields = {k: v for k, v in definition.items() if k != "exclude"}
            if "exclude" in definition:
                excluded = self.exclusions(definition, depth)
        else:
            raise self.refuse(f'expected one key, or "method" and "value", got {list(definition)}')
        method, value = fields["method"], fields["value"]
        if not isinstance(method, str):
            raise self.refuse(f"the method {method!r} is not a name")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise self.refuse(f"the value of {method!r} is {value!r}: expected a string")
        indirect = fields.get("indirect_selection", self.indirect_selection)
        if indirect not in INDIRECT_SELECTIONS:
            raise self.refuse(f"indirect_selection {indirect!r} is not one of {', '.join(INDIRECT_SELECTIONS)}")
        graph: dict[str, Any] = {key: fields.get(key) for key in _GRAPH_KEYS}
        for key in ("parents_depth", "children_depth"):
            if graph[key] is not None:
                try:
                    graph[key] = int(graph[key])
                except (TypeError, ValueError):
                    raise self.refuse(f"{key} must be a whole number") from None
        if graph["childrens_parents"] and graph["children"]:
            raise self.refuse('"childrens_parents" and "children" cannot be combined')
        raw = f"{method}:{value}"
        try:
            found = self.make(raw, method, str(value), graph, indirect)
        except DbtSelectorError as exc:
            raise self.refuse(exc.message) from None
        return found if excluded is None else Group("difference", (found, excluded))

    def make(self, raw: str, method: str, value: str, graph: dict[str, Any], indirect: str) -> Criterion:
        return _criterion(
            self.field,
            raw,
            method,
            str(value),
            parents=bool(graph["parents"]),
            parents_depth=graph["parents_depth"],
            children=bool(graph["children"]),
            children_depth=graph["children_depth"],
            childrens_parents=bool(graph["childrens_parents"]),
            indirect_selection=indirect,
        )


def listed_types(resource_types: tuple[str, ...] = (), exclude_resource_types: tuple[str, ...] = ()) -> frozenset[str]:
    """dbt-core's resource_types_from_args for `dbt ls`: its default types, or those given
    ("default": those, "all": those and analyses), minus the excluded ones."""
    types: set[str] = set(LS_RESOURCE_TYPES) if not resource_types else set()
    for value in resource_types:
        if value == "all":
            types |= LS_RESOURCE_TYPES | {ResourceType.ANALYSIS}
        elif value == "default":
            types |= LS_RESOURCE_TYPES
        else:
            types.add(value)
    return frozenset(types - set(exclude_resource_types))


def select_in_manifest(
    manifest: Manifest,
    select: str = "",
    exclude: str = "",
    *,
    selector: str = "",
    indirect_selection: str = "eager",
    resource_types: tuple[str, ...] = (),
    exclude_resource_types: tuple[str, ...] = (),
    state: Manifest | None = None,
) -> list[str]:
    """The unique_ids `dbt ls` lists for these flags (--select, --exclude, --selector,
    --indirect-selection, --resource-type, --exclude-resource-type, and --state: the
    comparison manifest `state:` criteria compare with), sorted. Raises DbtSelectorError (on
    the field at fault) for a selector dbt or the portal refuses, a `state:` criterion
    without `state` included; an empty `select` means everything, as in dbt, or the
    project's default YAML selector when it has one and nothing else selects."""
    if not (selector or select.strip() or exclude.strip()):
        selector = default_selector(manifest.selectors)
    if selector:
        spec = yaml_selector_spec(manifest.selectors, selector, indirect_selection)
        if state is None:
            _refuse_state_without_comparison(spec, "selector", selector)
    else:
        spec = cli_spec(select, exclude, indirect_selection)
        if state is None:
            for part, field in zip(spec.components, ("select", "exclude"), strict=True):
                _refuse_state_without_comparison(part, field)
    chosen, _ = _evaluate(manifest, spec, state)
    index = _index(manifest)
    return index.uids(chosen & index.of_types(listed_types(resource_types, exclude_resource_types)))
