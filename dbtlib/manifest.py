"""Django-free: dbt's manifest.json, parsed once into frozen nodes and a precomputed graph.

The one reader of manifests: lineage ingests from it, the selector engine selects over it,
the trigger check and the worker read node names and types from it.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, NamedTuple

from dbtlib.errors import ManifestError

SUPPORTED_SCHEMA_VERSIONS = range(10, 13)  # v10 (dbt 1.6) … v12 (dbt 1.8 and later)
_SCHEMA_VERSION = re.compile(r"/manifest/v(\d+)\.json$")
MAX_INT_DIGITS = 100


@contextmanager
def gc_paused(freeze: bool = False) -> Iterator[None]:
    """The cyclic garbage collector paused (then restored as it was): making millions of
    objects that all stay alive (a parsed manifest, its rows, a selection index) sets off full
    collections that each walk every one of them, about half of a 100,000-node manifest's
    parse. With `freeze`, for what lives as long as the process, everything is then frozen
    (gc.freeze): the collector never walks it again; cyclic garbage already there stays too."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


class ResourceType(StrEnum):
    """dbt-core's NodeType."""

    MODEL = "model"
    ANALYSIS = "analysis"
    TEST = "test"
    SNAPSHOT = "snapshot"
    OPERATION = "operation"
    SEED = "seed"
    RPC = "rpc"
    SQL_OPERATION = "sql_operation"
    DOC = "doc"
    SOURCE = "source"
    MACRO = "macro"
    EXPOSURE = "exposure"
    METRIC = "metric"
    GROUP = "group"
    SAVED_QUERY = "saved_query"
    SEMANTIC_MODEL = "semantic_model"
    UNIT_TEST = "unit_test"
    FIXTURE = "fixture"
    FUNCTION = "function"


# What `dbt ls` lists when no --resource-type is given (dbt-core's ListTask).
LS_RESOURCE_TYPES = frozenset(
    {
        ResourceType.MODEL,
        ResourceType.SNAPSHOT,
        ResourceType.SEED,
        ResourceType.TEST,
        ResourceType.SOURCE,
        ResourceType.EXPOSURE,
        ResourceType.METRIC,
        ResourceType.SAVED_QUERY,
        ResourceType.SEMANTIC_MODEL,
        ResourceType.UNIT_TEST,
        ResourceType.FUNCTION,
    }
)
# Tests: picked up indirectly by selection, left out of folder pictures.
TEST_TYPES = (ResourceType.TEST, ResourceType.UNIT_TEST)
# Every section of a manifest whose entries are graph members (what dbt's selector sees).
NODE_COLLECTIONS = (
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "semantic_models",
    "saved_queries",
    "unit_tests",
    "functions",
)

_SECTION_OF: dict[str, str] = {
    ResourceType.SOURCE: "sources",
    ResourceType.EXPOSURE: "exposures",
    ResourceType.METRIC: "metrics",
    ResourceType.SEMANTIC_MODEL: "semantic_models",
    ResourceType.SAVED_QUERY: "saved_queries",
    ResourceType.UNIT_TEST: "unit_tests",
    ResourceType.FUNCTION: "functions",
}


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    data_type: str


_NOTHING: Mapping[str, Any] = MappingProxyType({})


class StateFacts(NamedTuple):  # a tuple: one per node, made as cheaply as can be
    """What dbt's state comparison (`state:modified` and its sub-selectors) reads of a node
    beyond what the portal shows, as the manifest has it: see dbtlib/state.py."""

    checksum: str = ""  # "sha256:<hex>", or "path:<file>" for a seed larger than 1 MiB
    unrendered_config: Mapping[str, Any] = _NOTHING  # the config as written
    macros: tuple[str, ...] = ()  # depends_on.macros
    contract: tuple[bool, str] = (False, "")  # a model's contract: (enforced, checksum)
    # The fields its kind compares for equality (a model's access and latest_version, a
    # source's identifier, quoting and freshness, …): _STATE_FIELDS.
    fields: Mapping[str, Any] = _NOTHING


class Macro(NamedTuple):
    """A macro as state comparison reads it: its SQL and the macros it calls."""

    macro_sql: str
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class DbtNode:
    """One graph member of a manifest (model, source, test, exposure, …)."""

    unique_id: str
    resource_type: str
    name: str
    package_name: str = ""
    path: str = ""
    original_file_path: str = ""
    patch_path: str = ""  # without dbt's "project://" prefix
    fqn: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    description: str = ""
    columns: tuple[Column, ...] = ()
    raw_code: str = ""
    compiled_code: str = ""
    relation_name: str = ""
    materialization: str = ""
    source_name: str = ""
    test_name: str = ""  # test_metadata.name of a generic test ("" for a singular test)
    attached_node: str = ""
    column_name: str = ""
    version: str = ""  # a versioned model's version ("" when unversioned)
    # What its kind has of its own (an exposure's owner and url, a metric's type_params, a
    # model's contract and access, …), in the manifest's shape: see _details().
    details: Mapping[str, Any] = field(default_factory=dict)
    state_facts: StateFacts = StateFacts()

    @property
    def section(self) -> str:
        """The manifest section that holds it ("nodes", "sources", …)."""
        return _SECTION_OF.get(self.resource_type, "nodes")

    @classmethod
    def unchecked(cls, values: dict[str, Any]) -> DbtNode:
        """A node of these fields, taken as they are (of the right types, e.g. stored rows), the
        others at their defaults (read from the class, where a dataclass keeps a plain default):
        a third of the constructor's time, for a snapshot's 100,000 nodes."""
        node = object.__new__(cls)
        object.__setattr__(node, "__dict__", {**_MADE_DEFAULTS, **values})
        return node


# The defaults a dataclass makes per instance (not kept on the class), for DbtNode.unchecked:
# empty mappings, read-only and shared.
_MADE_DEFAULTS: dict[str, Any] = {f.name: _NOTHING for f in fields(DbtNode) if f.default_factory is dict}


@dataclass(frozen=True, eq=False)  # compared (and cached) by identity: one parse, one object
class Manifest:
    schema_version: int
    dbt_version: str = ""
    generated_at: datetime | None = None
    invocation_id: str = ""
    project_name: str = ""
    nodes: Mapping[str, DbtNode] = field(default_factory=dict)
    docs: Mapping[str, str] = field(default_factory=dict)  # "package.name" → doc block
    edges: tuple[tuple[str, str], ...] = ()  # (parent, child), every depends_on entry
    # The project's YAML selectors as dbt parsed them (selectors.yml, rendered): name → its
    # entry ({"name", "definition", "default", …}); empty for a stored snapshot.
    selectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The project's groups (resource_type "group"): not graph members (dbt selects none and
    # lists none), so kept apart from `nodes`.
    groups: Mapping[str, DbtNode] = field(default_factory=dict)
    # The macros (unique_id → Macro), for state comparison; empty for a stored snapshot.
    macros: Mapping[str, Macro] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))

    @property
    def parents(self) -> Mapping[str, tuple[str, ...]]:
        """unique_id → its parents (the edges between two of its nodes)."""
        return self._graph[0]

    @property
    def children(self) -> Mapping[str, tuple[str, ...]]:
        """unique_id → its children."""
        return self._graph[1]

    @cached_property  # built on first use: the selector engine reads the edges itself
    def _graph(self) -> tuple[Mapping[str, tuple[str, ...]], Mapping[str, tuple[str, ...]]]:
        parents: dict[str, list[str]] = {uid: [] for uid in self.nodes}
        children: dict[str, list[str]] = {uid: [] for uid in self.nodes}
        for parent, child in self.edges:
            if parent in children and child in parents:
                parents[child].append(parent)
                children[parent].append(child)
        return (
            MappingProxyType({k: tuple(v) for k, v in parents.items()}),
            MappingProxyType({k: tuple(v) for k, v in children.items()}),
        )

    @classmethod
    def from_nodes(cls, nodes: Iterable[DbtNode], **metadata: Any) -> Manifest:
        """A manifest from nodes already parsed (e.g. stored rows); edges from depends_on."""
        by_id = {node.unique_id: node for node in nodes}
        edges = dict.fromkeys((parent, uid) for uid, node in by_id.items() for parent in node.depends_on)
        return cls(nodes=by_id, edges=tuple(edges), **metadata)

    @classmethod
    def from_path(cls, path: Path) -> Manifest:
        return cls.from_dict(load_json(Path(path), "manifest"))

    @classmethod
    @gc_paused()  # else the collector walks its nodes again and again: a third of its time
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        metadata = data.get("metadata") or {}  # not an object: schema_version() refuses it
        version = schema_version(metadata)
        nodes: list[DbtNode] = []
        for section in NODE_COLLECTIONS:
            entries = data.get(section, {}) if data.get(section) is not None else {}
            if not isinstance(entries, dict):
                raise ManifestError(f"The manifest's {section!r} must be an object keyed by unique_id.")
            for unique_id, raw in entries.items():
                if not isinstance(raw, dict):
                    raise ManifestError(f"The manifest entry {unique_id!r} in {section!r} is not an object.")
                nodes.append(_node(section, str(unique_id), raw))
        return cls.from_nodes(
            nodes,
            schema_version=version,
            dbt_version=str(metadata.get("dbt_version") or ""),
            generated_at=_parse_time(metadata.get("generated_at")),
            invocation_id=str(metadata.get("invocation_id") or ""),
            project_name=str(metadata.get("project_name") or ""),
            docs=_docs(data.get("docs")),
            selectors=_selectors(data.get("selectors")),
            groups=_groups(data.get("groups")),
            macros=_macros(data.get("macros")),
        )


def _groups(raw: Any) -> dict[str, DbtNode]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestError("The manifest's 'groups' must be an object keyed by unique_id.")
    groups = {}
    for unique_id, entry in raw.items():
        if not isinstance(entry, dict):
            raise ManifestError(f"The manifest entry {unique_id!r} in 'groups' is not an object.")
        groups[str(unique_id)] = _node("groups", str(unique_id), entry)
    return groups


def _macros(raw: Any) -> dict[str, Macro]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ManifestError("The manifest's 'macros' must be an object keyed by unique_id.")
    macros = {}
    for unique_id, entry in raw.items():
        if not isinstance(entry, dict):
            raise ManifestError(f"The manifest entry {unique_id!r} in 'macros' is not an object.")
        sql, depends_on = entry.get("macro_sql"), entry.get("depends_on")
        calls = depends_on.get("macros") if isinstance(depends_on, dict) else None
        macros[str(unique_id)] = Macro(
            sql if isinstance(sql, str) else "",
            tuple(c for c in calls if isinstance(c, str)) if isinstance(calls, list) else (),
        )
    return macros


def _selectors(raw: Any) -> dict[str, Mapping[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(entry, dict) for entry in raw.values()):
        raise ManifestError("The manifest's 'selectors' must be an object of name → selector.")
    return {str(name): entry for name, entry in raw.items()}


def cached_manifest(path: Path) -> Manifest:
    """The manifest at `path`, parsed once per file version (path, mtime, size) per process."""
    stat = Path(path).stat()
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _parsed(path: str, mtime_ns: int, size: int) -> Manifest:
    return Manifest.from_path(Path(path))


def load_json(source: Path | BinaryIO, what: str) -> dict[str, Any]:
    """A JSON object from a file (a path, or an open binary file such as an upload), parsed
    once (garbage collector paused); ManifestError (naming `what` and what is wrong) when it
    is not one: invalid JSON or UTF-8, nesting too deep, NaN/Infinity, numbers out of range."""
    hooks: dict[str, Any] = {
        "parse_constant": lambda name: _refuse_number(what, name),
        "parse_float": lambda text: _float(what, text),
        "parse_int": lambda text: _int(what, text),
    }
    try:
        with gc_paused():
            if isinstance(source, Path):
                with source.open("rb") as handle:
                    data = json.load(handle, **hooks)
            else:
                data = json.load(source, **hooks)
    except OSError as exc:
        raise ManifestError(f"Cannot read the {what}: {exc.strerror or exc}.") from exc
    except RecursionError:
        raise ManifestError(f"The {what} is nested too deeply to be a dbt {what}.") from None
    except (UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise ManifestError(f"The {what} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ManifestError(f"The {what} must be a JSON object.")
    return data


def _refuse_number(what: str, text: str) -> None:
    raise ManifestError(f"The {what} holds {text}, which is not a JSON number.")


def _float(what: str, text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ManifestError(f"The {what} holds the number {text[:40]!r}, which is out of range.")
    return value


def _int(what: str, text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ManifestError(f"The {what} holds a number of {len(text)} digits (at most {MAX_INT_DIGITS}).")
    return int(text)


def schema_version(metadata: Any) -> int:
    url = metadata.get("dbt_schema_version") if isinstance(metadata, dict) else None
    match = _SCHEMA_VERSION.search(url) if isinstance(url, str) else None
    if match is None:
        raise ManifestError(
            "This is not a dbt manifest: metadata.dbt_schema_version is missing "
            "(expected https://schemas.getdbt.com/dbt/manifest/v10.json … v12.json)."
        )
    version = int(match.group(1))
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ManifestError(
            f"Manifest schema v{version} is not supported; the portal reads v10 to v12 "
            "(dbt 1.6 and later). Re-run `dbt parse` with a supported dbt version."
        )
    return version


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _docs(raw: Any) -> dict[str, str]:
    docs: dict[str, str] = {}
    for doc in (raw or {}).values() if isinstance(raw, dict) else ():
        if isinstance(doc, dict) and doc.get("name"):
            docs[f"{doc.get('package_name')}.{doc['name']}"] = str(doc.get("block_contents") or "")
    return docs


_IS_STR = str.__instancecheck__  # isinstance(value, str), as map() calls it in C
_TEXT_OR_NOTHING = {str, type(None)}


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    """A scalar field as text ("" when missing); ManifestError naming it otherwise."""
    value = raw.get(key)
    if type(value) is str:  # nearly every call: a 100,000-node manifest makes 3 million
        return value
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ManifestError(f"{where}: {key} must be a string, not {_kind(value)}.")
    return str(value)


def _texts(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if type(value) is list and all(map(_IS_STR, value)):  # nearly every call, checked in C
        return tuple(value)
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ManifestError(f"{where}: {key} must be a list of strings, not {_kind(value)}.")
    return tuple(str(v) for v in value)


def _kind(value: Any) -> str:
    if isinstance(value, list) and value:
        return f"a list holding {_kind(value[0])}"
    return {dict: "an object", list: "a list", bool: "a boolean", str: "a string"}.get(type(value), "a number")


def _columns(raw: Any, where: str) -> tuple[Column, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: columns must be an object keyed by column name, not {_kind(raw)}.")
    columns = []
    for name, col in raw.items():
        if type(col) is dict:  # the common case, without naming the column for an error
            text, description, data_type = col.get("name"), col.get("description"), col.get("data_type")
            if {type(text), type(description), type(data_type)} <= _TEXT_OR_NOTHING:
                columns.append(Column(text or str(name), description or "", data_type or ""))
                continue
        col = {} if col is None else col
        if not isinstance(col, dict):
            raise ManifestError(f"{where}: columns[{name!r}] must be an object, not {_kind(col)}.")
        at = f"{where}: columns[{name!r}]"
        columns.append(
            Column(
                name=_text(col, "name", at) or str(name),
                description=_text(col, "description", at),
                data_type=_text(col, "data_type", at),
            )
        )
    return tuple(columns)


def _object(value: Any) -> dict[str, Any]:
    """VALUE when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _node(section: str, unique_id: str, raw: dict[str, Any]) -> DbtNode:
    where = f"{section}[{unique_id!r}]"
    config = _object(raw.get("config"))
    patch_path = _text(raw, "patch_path", where)
    depends_on = raw.get("depends_on")
    parents = _texts(depends_on, "nodes", f"{where}: depends_on") if isinstance(depends_on, dict) else ()
    macros = _texts(depends_on, "macros", f"{where}: depends_on") if isinstance(depends_on, dict) else ()
    test_metadata = _object(raw.get("test_metadata"))
    kwargs = _object(test_metadata.get("kwargs"))
    resource_type = _text(raw, "resource_type", where) or _SINGULAR.get(section, section.rstrip("s"))
    return DbtNode(
        unique_id=unique_id,
        resource_type=resource_type,
        name=_text(raw, "name", where) or unique_id.rsplit(".", 1)[-1],
        package_name=_text(raw, "package_name", where),
        path=_text(raw, "path", where),
        original_file_path=_text(raw, "original_file_path", where),
        patch_path=patch_path.split("://", 1)[1] if "://" in patch_path else patch_path,
        fqn=_texts(raw, "fqn", where),
        tags=_texts(raw, "tags", where),
        config=config,
        depends_on=tuple(dict.fromkeys(parents)),
        description=_text(raw, "description", where),
        columns=_columns(raw.get("columns"), where),
        raw_code=_text(raw, "raw_code", where) or _text(raw, "raw_sql", where),
        compiled_code=_text(raw, "compiled_code", where) or _text(raw, "compiled_sql", where),
        relation_name=_text(raw, "relation_name", where),
        materialization=_text(config, "materialized", f"{where}: config"),
        source_name=_text(raw, "source_name", where),
        test_name=_text(test_metadata, "name", f"{where}: test_metadata"),
        attached_node=_text(raw, "attached_node", where),
        column_name=_text(raw, "column_name", where) or _text(kwargs, "column_name", f"{where}: test_metadata.kwargs"),
        version=_text(raw, "version", where),
        details=_details(resource_type, raw, config),
        state_facts=_state_facts(resource_type, raw, macros),
    )


# Per kind, the top-level fields dbt-core 1.11's same_contents compares for equality (beyond
# body, config, fqn and descriptions, compared in dbtlib/state.py).
_STATE_FIELDS: dict[str, tuple[str, ...]] = {
    ResourceType.MODEL: ("latest_version", "access", "deprecation_date"),
    ResourceType.FUNCTION: ("arguments", "returns"),
    ResourceType.SOURCE: ("database", "schema", "identifier", "quoting", "freshness", "loaded_at_field", "external"),
    ResourceType.EXPOSURE: ("type", "owner", "maturity", "url", "label"),
    ResourceType.METRIC: ("type", "label"),
    ResourceType.SEMANTIC_MODEL: ("model", "defaults", "entities", "dimensions", "measures", "primary_entity", "group"),
    ResourceType.SAVED_QUERY: ("label", "group"),
}


def _state_facts(resource_type: str, raw: Mapping[str, Any], macros: tuple[str, ...]) -> StateFacts:
    """What state comparison reads, kept by reference (no copy: parsing stays cheap). Never
    shown: a field of an unexpected shape is left out, not refused."""
    checksum = raw.get("checksum")
    if isinstance(checksum, dict):
        checksum = f"{checksum.get('name')}:{checksum.get('checksum')}"
    keys = _STATE_FIELDS.get(resource_type)
    fields = {key: raw.get(key) for key in keys} if keys else _NOTHING
    if resource_type == ResourceType.SAVED_QUERY:
        fields = {**fields, **_saved_query_fields(raw)}
    contract, config = raw.get("contract"), raw.get("unrendered_config")
    return StateFacts(
        checksum if isinstance(checksum, str) else "",
        config if isinstance(config, dict) else _NOTHING,
        macros,
        (contract.get("enforced") is True, str(contract.get("checksum") or ""))
        if isinstance(contract, dict)
        else (False, ""),
        fields,
    )


def _saved_query_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """dbt compares a saved query's metrics, group_by and where, and its exports' names and
    their unrendered export_as, schema and alias."""
    params = _object(raw.get("query_params"))
    exports = [
        (
            export.get("name"),
            *(_object(export.get("unrendered_config")).get(k) for k in ("export_as", "schema", "alias")),
        )
        for export in _dicts(raw.get("exports"))
    ]
    return {
        "metrics": params.get("metrics"),
        "group_by": params.get("group_by"),
        "where": params.get("where"),
        "exports": exports,
    }


_SINGULAR = {"saved_queries": ResourceType.SAVED_QUERY.value}
_OWNER_FIELDS = ("name", "email")
# Per kind, what its page shows, copied as the manifest has it (JSON objects and lists).
_KIND_OBJECTS: dict[str, tuple[str, ...]] = {
    ResourceType.METRIC: ("type_params", "filter"),
    ResourceType.SEMANTIC_MODEL: ("entities", "dimensions", "measures", "defaults", "node_relation"),
    ResourceType.SAVED_QUERY: ("query_params", "exports"),
}
_KIND_TEXTS: dict[str, tuple[str, ...]] = {
    ResourceType.EXPOSURE: ("type", "maturity", "url", "label"),
    ResourceType.METRIC: ("type", "label", "time_granularity"),
    ResourceType.SEMANTIC_MODEL: ("model", "label", "primary_entity"),
    ResourceType.SAVED_QUERY: ("label",),
    ResourceType.MODEL: ("access", "latest_version"),
}


def _details(resource_type: str, raw: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """What a kind has of its own, only the keys that are set (a plain model: its access).
    Shown, never relied on: a field of an unexpected shape is left out, not refused."""
    details: dict[str, Any] = {}
    for key in _KIND_TEXTS.get(resource_type, ()):
        if value := _scalar(raw.get(key)):
            details[key] = value
    for key in _KIND_OBJECTS.get(resource_type, ()):
        if isinstance(found := raw.get(key), dict | list) and found:
            details[key] = found
    owner = raw.get("owner")
    if resource_type in (ResourceType.EXPOSURE, ResourceType.GROUP) and isinstance(owner, dict):
        details["owner"] = {k: v for k in _OWNER_FIELDS if (v := _scalar(owner.get(k)))}
    group = _scalar(config.get("group")) or _scalar(raw.get("group"))
    if group and resource_type != ResourceType.GROUP:
        details["group"] = group
    if resource_type == ResourceType.MODEL:
        details.update(_contract(raw, config))
    return details


def _scalar(value: Any) -> str:
    return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _contract(raw: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A model's contract (enforced or not), its constraints and its columns' declared data
    types and constraints; nothing for a model with neither a contract nor a constraint."""
    contract = _object(config.get("contract")) or _object(raw.get("contract"))
    constraints = _dicts(raw.get("constraints"))
    columns = []
    for name, col in _object(raw.get("columns")).items():
        col = _object(col)
        column_constraints = _dicts(col.get("constraints"))
        data_type = _scalar(col.get("data_type"))
        if data_type or column_constraints:
            columns.append(
                {
                    "name": _scalar(col.get("name")) or str(name),
                    "data_type": data_type,
                    "constraints": column_constraints,
                }
            )
    enforced = contract.get("enforced") is True
    if not enforced and not constraints and not any(c["constraints"] for c in columns):
        return {}
    return {
        "contract": {"enforced": enforced, "alias_types": contract.get("alias_types") is not False},
        "constraints": constraints,
        "contract_columns": columns,
    }
