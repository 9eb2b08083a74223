"""Django-free: read dbt's manifest.json (and catalog.json) into rows ready for bulk insert."""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

SUPPORTED_SCHEMA_VERSIONS = range(10, 13)  # v10 (dbt 1.6) … v12 (dbt 1.8 and later)
_SCHEMA_VERSION = re.compile(r"/manifest/v(\d+)\.json$")
# Every collection of a manifest whose entries are graph members (what dbt's selector sees).
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
TEST_TYPES = ("test", "unit_test")
_DOC_CALL = re.compile(r"""\{\{\s*doc\(\s*['"]([^'"]+)['"]\s*(?:,\s*['"]([^'"]+)['"]\s*)?\)\s*\}\}""")


class ManifestError(Exception):
    """A manifest (or catalog) the portal refuses; the message is meant for the user."""


@dataclass
class NodeRow:
    unique_id: str
    resource_type: str
    name: str
    package_name: str
    path: str
    original_file_path: str
    patch_path: str
    folder: str
    description: str
    tags: list[str]
    materialization: str
    relation_name: str
    columns: list[dict[str, Any]]
    raw_code: str
    compiled_code: str
    fqn: list[str]
    config: dict[str, Any]
    attached_node: str
    column_name: str

    @property
    def search_text(self) -> str:
        return "\n".join([self.name, self.original_file_path, " ".join(self.tags), self.description]).lower()


@dataclass
class ParsedManifest:
    schema_version: int
    dbt_version: str
    generated_at: datetime | None
    invocation_id: str
    nodes: list[NodeRow] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def folder_summary(self) -> list[dict[str, Any]]:
        """Per folder (tests left out): node counts by type and links to other folders, with
        the number of edges behind each link. Small, so the whole-project view reads it
        from the snapshot row instead of aggregating 10,000 nodes per request."""
        folder_of = {n.unique_id: n.folder for n in self.nodes if n.resource_type not in TEST_TYPES}
        folders: dict[str, dict[str, Any]] = {}
        for node in self.nodes:
            if node.resource_type in TEST_TYPES:
                continue
            entry = folders.setdefault(node.folder, {"folder": node.folder, "counts": {}, "feeds": {}})
            entry["counts"][node.resource_type] = entry["counts"].get(node.resource_type, 0) + 1
        for parent, child in self.edges:
            upstream, downstream = folder_of.get(parent), folder_of.get(child)
            if upstream is not None and downstream is not None and upstream != downstream:
                feeds = folders[upstream]["feeds"]
                feeds[downstream] = feeds.get(downstream, 0) + 1
        return [folders[name] for name in sorted(folders)]

    def counts_by_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.resource_type] = counts.get(node.resource_type, 0) + 1
        return dict(sorted(counts.items()))


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise ManifestError(f"Cannot read the {what}: {exc.strerror or exc}.") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"The {what} is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"The {what} must be a JSON object.")
    return data


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


def _columns(raw: Any, catalog_columns: dict[str, dict[str, Any]], docs: dict[str, str], package: str) -> list[dict]:
    columns: list[dict[str, Any]] = []
    seen: set[str] = set()
    by_lower = {name.lower(): col for name, col in catalog_columns.items()}
    for name, col in (raw or {}).items():
        col = col or {}
        from_catalog = by_lower.get(str(name).lower(), {})
        columns.append(
            {
                "name": str(col.get("name") or name),
                "description": _resolve_docs(str(col.get("description") or ""), docs, package),
                "data_type": from_catalog.get("type") or col.get("data_type") or "",
            }
        )
        seen.add(str(name).lower())
    for col in sorted(catalog_columns.values(), key=lambda c: c.get("index") or 0):
        if str(col.get("name", "")).lower() not in seen:
            columns.append({"name": str(col.get("name", "")), "description": "", "data_type": col.get("type") or ""})
    return columns


def _node_row(collection: str, unique_id: str, raw: dict[str, Any], catalog, docs) -> NodeRow:
    config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
    package = str(raw.get("package_name") or "")
    original_file_path = str(raw.get("original_file_path") or "")
    patch_path = str(raw.get("patch_path") or "")
    if "://" in patch_path:
        patch_path = patch_path.split("://", 1)[1]
    directory = posixpath.dirname(original_file_path)
    resource_type = str(raw.get("resource_type") or collection.rstrip("s"))
    test_metadata = raw.get("test_metadata") or {}
    return NodeRow(
        unique_id=unique_id,
        resource_type=resource_type,
        name=str(raw.get("name") or unique_id.rsplit(".", 1)[-1]),
        package_name=package,
        path=str(raw.get("path") or ""),
        original_file_path=original_file_path,
        patch_path=patch_path,
        folder=f"{package}/{directory}" if directory else package,
        description=_resolve_docs(str(raw.get("description") or ""), docs, package),
        tags=[str(tag) for tag in (raw.get("tags") or [])],
        materialization=str(config.get("materialized") or ""),
        relation_name=str(raw.get("relation_name") or ""),
        columns=_columns(raw.get("columns"), _catalog_columns(catalog, unique_id), docs, package),
        raw_code=str(raw.get("raw_code") or raw.get("raw_sql") or ""),
        compiled_code=str(raw.get("compiled_code") or raw.get("compiled_sql") or ""),
        fqn=[str(part) for part in (raw.get("fqn") or [])],
        config=config,
        attached_node=str(raw.get("attached_node") or ""),
        column_name=str(raw.get("column_name") or (test_metadata.get("kwargs") or {}).get("column_name") or ""),
    )


def parse_manifest(manifest_path: Path, catalog_path: Path | None = None) -> ParsedManifest:
    manifest = _load_json(manifest_path, "manifest")
    version = schema_version(manifest.get("metadata"))
    catalog = _load_json(catalog_path, "catalog") if catalog_path is not None else None
    metadata = manifest["metadata"]
    docs: dict[str, str] = {}
    for doc in (manifest.get("docs") or {}).values():
        if isinstance(doc, dict) and doc.get("name"):
            docs[f"{doc.get('package_name')}.{doc['name']}"] = str(doc.get("block_contents") or "")
            docs.setdefault(f"*.{doc['name']}", str(doc.get("block_contents") or ""))
    parsed = ParsedManifest(
        schema_version=version,
        dbt_version=str(metadata.get("dbt_version") or ""),
        generated_at=_parse_time(metadata.get("generated_at")),
        invocation_id=str(metadata.get("invocation_id") or ""),
    )
    edges: dict[tuple[str, str], None] = {}
    for collection in NODE_COLLECTIONS:
        entries = manifest.get(collection) or {}
        if not isinstance(entries, dict):
            raise ManifestError(f"The manifest's {collection!r} must be an object keyed by unique_id.")
        for unique_id, raw in entries.items():
            if not isinstance(raw, dict):
                raise ManifestError(f"The manifest entry {unique_id!r} in {collection!r} is not an object.")
            parsed.nodes.append(_node_row(collection, unique_id, raw, catalog, docs))
            depends_on = raw.get("depends_on") or {}
            for parent in depends_on.get("nodes") or [] if isinstance(depends_on, dict) else []:
                edges[(str(parent), unique_id)] = None
    parsed.edges = list(edges)
    return parsed
