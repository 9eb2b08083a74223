"""Django-free: dbt's state comparison of two manifests, the `state:` selector method and the
diff summary of a slim CI run.

Semantics are dbt-core 1.11's (graph/selector_methods.py StateSelectorMethod, the same_*
methods of contracts/graph/nodes.py): a node is `state:modified` when its contents differ
from the comparison manifest's node of the same unique_id (what "contents" means depends on
its kind), when a macro it calls, directly or through other macros, changed, or when its
contract changed. Some of dbt's quirks are kept on purpose: a new source, exposure, metric,
semantic model or saved query is new but not modified; `modified.body`, `.configs`,
`.relation`, `.persisted_descriptions` and `.contract` take in every new node of the kinds
that have such a part. dbt's warnings (and its error for a breaking contract change of a
versioned model) are left to dbt: the portal only selects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dbtlib.manifest import LS_RESOURCE_TYPES, DbtNode, Manifest, ResourceType

# The values `state:` takes (dbt-core's state_checks).
STATE_VALUES = (
    "new", "old", "modified", "unmodified", "modified.body", "modified.configs", "modified.persisted_descriptions",
    "modified.relation", "modified.macros", "modified.contract",
)  # fmt: skip

# Config keys dbt does not compare (CompareBehavior.Exclude of dbt's config classes): a
# node's where it is built is compared by `modified.relation`, its tags are not a change.
_NODE_CONFIG_EXCLUDED = frozenset({"alias", "schema", "database", "tags", "group"})
_EXCLUDED_BY_SECTION = {"sources": frozenset(), "exposures": frozenset(), "metrics": frozenset({"group"})}
# A test's config: only what changes its outcome (TestConfig.same_contents).
_TEST_CONFIG_KEYS = (
    "severity", "where", "limit", "fail_calc", "warn_if", "error_if", "store_failures", "store_failures_as",
)  # fmt: skip
_RELATION_KEYS = ("database", "schema", "alias")
_SOURCE_RELATION = ("database", "schema", "identifier")
# The sections whose members are dbt's ParsedNode (a body, a relation, persisted docs, a contract).
_PARSED = ("nodes", "functions")


def _config_view(node: DbtNode) -> Mapping[str, Any]:
    """The part of a node's config dbt compares (`same_config`)."""
    if node.section in ("semantic_models", "saved_queries"):
        return node.config  # compared rendered, every key
    config = node.state_facts.unrendered_config
    if node.resource_type == ResourceType.TEST:
        return {key: config[key] for key in _TEST_CONFIG_KEYS if key in config}
    excluded = _EXCLUDED_BY_SECTION.get(node.section, _NODE_CONFIG_EXCLUDED)
    return {key: value for key, value in config.items() if key not in excluded}


def same_config(new: DbtNode, old: DbtNode) -> bool:
    return _config_view(new) == _config_view(old)


def same_body(new: DbtNode, old: DbtNode) -> bool:
    """A seed's body is its file's checksum (its path when larger than 1 MiB), any other
    node's its raw code."""
    if new.resource_type == ResourceType.SEED:
        return new.state_facts.checksum == old.state_facts.checksum
    return new.raw_code == old.raw_code


def same_persisted_description(new: DbtNode, old: DbtNode) -> bool:
    """Descriptions matter only where persist_docs writes them to the warehouse."""
    persist = new.config.get("persist_docs")
    persist = persist if isinstance(persist, dict) else {}
    if persist.get("relation") and new.description != old.description:
        return False
    if persist.get("columns"):
        return {c.name: c.description for c in new.columns} == {c.name: c.description for c in old.columns}
    return True


def same_relation(new: DbtNode, old: DbtNode) -> bool:
    """Where it is built as configured (not as rendered: generate_schema_name and the
    target do not count); a source's database, schema and identifier."""
    if new.section == "sources":
        return all(new.state_facts.fields.get(k) == old.state_facts.fields.get(k) for k in _SOURCE_RELATION)
    mine, others = new.state_facts.unrendered_config, old.state_facts.unrendered_config
    return all(mine.get(key) == others.get(key) for key in _RELATION_KEYS)


def same_contract(new: DbtNode, old: DbtNode) -> bool:
    """dbt-core's ModelNode.same_contract (any other node's contract is always the same)."""
    if new.resource_type != ResourceType.MODEL or old.resource_type != ResourceType.MODEL:
        return True
    (enforced, checksum), (was_enforced, old_checksum) = new.state_facts.contract, old.state_facts.contract
    if not enforced and not was_enforced:
        return True
    return enforced and checksum == old_checksum


def same_contents(new: DbtNode, old: DbtNode | None) -> bool:  # noqa: PLR0911 - one answer per kind
    """dbt-core's same_contents of each kind."""
    section, fields = new.section, new.state_facts.fields
    if section in ("sources", "exposures", "metrics", "semantic_models", "saved_queries") and old is None:
        return True  # dbt: "existing when it didn't before is a change!", yet answers "same"
    if old is None:
        return False
    same_fields = fields == old.state_facts.fields
    if section == "unit_tests":
        return new.state_facts.checksum == old.state_facts.checksum
    if section == "sources":
        return same_fields and new.fqn == old.fqn and same_config(new, old)
    if section == "exposures":
        same_parents = set(new.depends_on) == set(old.depends_on)
        return (
            same_fields
            and new.fqn == old.fqn
            and new.description == old.description
            and same_parents
            and same_config(new, old)
        )
    if section in ("metrics", "semantic_models"):
        return same_fields and new.description == old.description and same_config(new, old)
    if section == "saved_queries":
        return same_fields and new.description == old.description and new.tags == old.tags and same_config(new, old)
    if new.resource_type == ResourceType.TEST and new.test_name:
        return same_config(new, old) and new.fqn == old.fqn
    return (
        same_body(new, old)
        and same_config(new, old)
        and same_persisted_description(new, old)
        and new.fqn == old.fqn
        and same_relation(new, old)
        and same_contract(new, old)
        and same_fields
    )


def modified_macros(manifest: Manifest, state: Manifest) -> frozenset[str]:
    """Macros added, removed or changed (their SQL), and every macro that calls one of them,
    directly or through other macros."""
    old, new = state.macros, manifest.macros
    changed = {uid for uid, macro in new.items() if uid not in old or old[uid].macro_sql != macro.macro_sql}
    changed |= set(old) - set(new)
    callers: dict[str, list[str]] = {}
    for uid, macro in new.items():
        for called in macro.depends_on:
            callers.setdefault(called, []).append(uid)
    tainted, frontier = set(changed), list(changed)
    while frontier:
        for caller in callers.get(frontier.pop(), ()):
            if caller not in tainted:
                tainted.add(caller)
                frontier.append(caller)
    return frozenset(tainted)


def _part_check(same: Callable[[DbtNode, DbtNode], bool], sections: tuple[str, ...]) -> Callable[..., bool]:
    """dbt's check_modified_factory: new, or different in that part; only the kinds that have it."""
    return lambda old, new, macros: new.section in sections and (old is None or not same(new, old))


def _modified(old: DbtNode | None, new: DbtNode, macros: frozenset[str]) -> bool:
    contract_changed = old is not None and old.resource_type == ResourceType.MODEL and not same_contract(new, old)
    return not same_contents(new, old) or _calls_modified_macro(new, macros) or contract_changed


def _calls_modified_macro(node: DbtNode, macros: frozenset[str]) -> bool:
    return not macros.isdisjoint(node.state_facts.macros)


_CHECKS: dict[str, Callable[[DbtNode | None, DbtNode, frozenset[str]], bool]] = {
    "new": lambda old, new, macros: old is None,
    "old": lambda old, new, macros: old is not None,
    "modified": _modified,
    "unmodified": lambda old, new, macros: not _modified(old, new, macros),
    "modified.body": _part_check(same_body, _PARSED),
    "modified.configs": _part_check(
        same_config, (*_PARSED, "sources", "exposures", "metrics", "semantic_models", "saved_queries")
    ),
    "modified.persisted_descriptions": _part_check(same_persisted_description, _PARSED),
    "modified.relation": _part_check(same_relation, (*_PARSED, "sources")),
    "modified.macros": lambda old, new, macros: _calls_modified_macro(new, macros),
    "modified.contract": _part_check(same_contract, _PARSED),
}


@lru_cache(maxsize=16)  # by identity: a pair of parsed manifests, each value once
def state_search(manifest: Manifest, state: Manifest, value: str) -> frozenset[str]:
    """The nodes `state:<value>` selects in `manifest` against the comparison `state`
    (value one of STATE_VALUES)."""
    check = _CHECKS[value]
    macros = modified_macros(manifest, state) if value not in ("new", "old") else frozenset()
    return frozenset(uid for uid, node in manifest.nodes.items() if check(state.nodes.get(uid), node, macros))


@dataclass(frozen=True)
class StateDiff:
    """What a pull request changes against production, as `dbt ls` would list it: its new
    and modified nodes (`state:new`, the `state:modified` ones that are not new), those it
    removed, and those downstream of the new and modified ones (`state:modified+` besides
    themselves): sorted unique_ids."""

    new: tuple[str, ...]
    modified: tuple[str, ...]
    removed: tuple[str, ...]
    downstream: tuple[str, ...]


def compare(manifest: Manifest, state: Manifest) -> StateDiff:
    """The StateDiff of `manifest` (the pull request's) against `state` (production's)."""
    listed = {uid for uid, node in manifest.nodes.items() if node.resource_type in LS_RESOURCE_TYPES}
    new = state_search(manifest, state, "new") & listed
    modified = (state_search(manifest, state, "modified") & listed) - new
    changed = new | modified
    below: set[str] = set()
    frontier = list(changed)
    while frontier:
        for child in manifest.children.get(frontier.pop(), ()):
            if child not in below:
                below.add(child)
                frontier.append(child)
    removed = (
        uid
        for uid, node in state.nodes.items()
        if uid not in manifest.nodes and node.resource_type in LS_RESOURCE_TYPES
    )
    return StateDiff(
        new=tuple(sorted(new)),
        modified=tuple(sorted(modified)),
        removed=tuple(sorted(removed)),
        downstream=tuple(sorted((below & listed) - changed)),
    )
