"""Django-free: a parsed dbt manifest (and catalog.json) turned into rows ready for COPY.

The manifest itself is read by dbtlib.manifest (the one reader); what is lineage's own is
here: catalog columns merged in, `{{ doc() }}` calls resolved, folders and their summary.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from dbtlib.errors import ManifestError
from dbtlib.manifest import TEST_TYPES, Column, DbtNode, Manifest, load_json

__all__ = [
    "ManifestError", "all_nodes", "catalog_columns", "counts_by_type", "folder_of", "folder_summary", "node_rows",
    "read_catalog",
]  # fmt: skip

_DOC_CALL = re.compile(r"""\{\{\s*doc\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?\)\s*\}\}""")


def read_catalog(path: Path | None) -> dict[str, Any] | None:
    return load_json(path, "catalog") if path is not None else None


def catalog_columns(catalog: dict[str, Any]) -> dict[str, Any]:
    """What lineage keeps of a catalog: each node's and source's columns (name, type, index),
    in the catalog's own shape, so node_rows reads it as it reads the whole file."""
    trimmed: dict[str, Any] = {}
    for collection in ("nodes", "sources"):
        entries = catalog.get(collection)
        trimmed[collection] = {
            unique_id: {"columns": _typed_columns(entry)}
            for unique_id, entry in (entries.items() if isinstance(entries, dict) else ())
        }
    return trimmed


def _typed_columns(entry: Any) -> dict[str, dict[str, Any]]:
    columns = entry.get("columns") if isinstance(entry, dict) else None
    if not isinstance(columns, dict):
        return {}
    return {
        key: {field: column.get(field) for field in ("name", "type", "index")}
        for key, column in columns.items()
        if isinstance(column, dict)
    }


def folder_of(node: DbtNode) -> str:
    directory = posixpath.dirname(node.original_file_path)
    return f"{node.package_name}/{directory}" if directory else node.package_name


def _doc_index(manifest: Manifest) -> dict[str, str]:
    docs = dict(manifest.docs)
    for key, text in manifest.docs.items():
        docs.setdefault(f"*.{key.split('.', 1)[-1]}", text)
    return docs


def _resolve_docs(text: str, docs: dict[str, str], package: str) -> str:
    """dbt renders doc() at parse time; resolve any call left in the text the same way."""

    def replace(match: re.Match) -> str:
        first, second = match.group(1), match.group(2)
        key = f"{first}.{second}" if second else f"{package}.{first}"
        return docs.get(key, docs.get(f"*.{second or first}", match.group(0)))

    return _DOC_CALL.sub(replace, text) if "{{" in text else text


def _catalog_columns(catalog: dict[str, Any] | None, unique_id: str) -> dict[str, dict[str, Any]]:
    if not catalog:
        return {}
    entry = (catalog.get("nodes") or {}).get(unique_id) or (catalog.get("sources") or {}).get(unique_id) or {}
    columns = entry.get("columns") or {}
    return columns if isinstance(columns, dict) else {}


def _columns(
    declared: tuple[Column, ...], catalog_columns: dict[str, dict[str, Any]], docs: dict[str, str], package: str
) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = []
    by_lower = {name.lower(): col for name, col in catalog_columns.items()}
    for col in declared:
        from_catalog = by_lower.get(col.name.lower(), {})
        columns.append(
            {
                "name": col.name,
                "description": _resolve_docs(col.description, docs, package),
                "data_type": from_catalog.get("type") or col.data_type,
            }
        )
    seen = {col.name.lower() for col in declared}
    for found in sorted(catalog_columns.values(), key=lambda c: c.get("index") or 0):
        if str(found.get("name", "")).lower() not in seen:
            columns.append(
                {"name": str(found.get("name", "")), "description": "", "data_type": found.get("type") or ""}
            )
    return columns


def all_nodes(manifest: Manifest) -> list[DbtNode]:
    """What lineage stores: the graph's members and the project's groups."""
    return [*manifest.nodes.values(), *manifest.groups.values()]


def node_rows(manifest: Manifest, catalog: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per node (groups included), keyed by the lineage Node model's column names
    (no snapshot)."""
    docs = _doc_index(manifest)
    rows = []
    for n in all_nodes(manifest):
        description = _resolve_docs(n.description, docs, n.package_name)
        label = n.details.get("label", "")
        rows.append(
            {
                "unique_id": n.unique_id,
                "resource_type": n.resource_type,
                "name": n.name,
                "package_name": n.package_name,
                "path": n.path,
                "original_file_path": n.original_file_path,
                "patch_path": n.patch_path,
                "folder": folder_of(n),
                "description": description,
                "tags": list(n.tags),
                "materialization": n.materialization,
                "relation_name": n.relation_name,
                "columns": _columns(n.columns, _catalog_columns(catalog, n.unique_id), docs, n.package_name),
                "raw_code": n.raw_code,
                "compiled_code": n.compiled_code,
                "fqn": list(n.fqn),
                "config": dict(n.config),
                "attached_node": n.attached_node,
                "column_name": n.column_name,
                "test_name": n.test_name,
                "version": n.version,
                "details": n.details,
                "group_name": n.details.get("group", ""),
                "search_text": "\n".join([n.name, label, n.original_file_path, " ".join(n.tags), description]).lower(),
            }
        )
    return rows


def folder_summary(manifest: Manifest) -> list[dict[str, Any]]:
    """Per folder (tests left out): node counts by type and links to other folders, with
    the number of edges behind each link. Small, so the whole-project view reads it
    from the snapshot row instead of aggregating 10,000 nodes per request."""
    nodes = {n.unique_id: n for n in all_nodes(manifest)}
    folder = {uid: folder_of(n) for uid, n in nodes.items() if n.resource_type not in TEST_TYPES}
    folders: dict[str, dict[str, Any]] = {}
    for uid, name in folder.items():
        entry = folders.setdefault(name, {"folder": name, "counts": {}, "feeds": {}})
        kind = nodes[uid].resource_type
        entry["counts"][kind] = entry["counts"].get(kind, 0) + 1
    for parent, child in manifest.edges:
        upstream, downstream = folder.get(parent), folder.get(child)
        if upstream is not None and downstream is not None and upstream != downstream:
            feeds = folders[upstream]["feeds"]
            feeds[downstream] = feeds.get(downstream, 0) + 1
    return [folders[name] for name in sorted(folders)]


def counts_by_type(manifest: Manifest) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in all_nodes(manifest):
        counts[node.resource_type] = counts.get(node.resource_type, 0) + 1
    return dict(sorted(counts.items()))
