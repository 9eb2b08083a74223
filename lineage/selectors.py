"""The select API's door to the one selector engine (dbtlib.selectors): a snapshot's nodes
and edges become a Manifest once per process (snapshots never change), then selection is pure
Python over its precomputed graph and the engine's index."""

from __future__ import annotations

import json
from functools import lru_cache

from django.db import connection

from dbtlib.manifest import DbtNode, Manifest, ResourceType, gc_paused
from dbtlib.selectors import prepare, select_in_manifest
from kernel.errors import dbt_input_refused
from lineage.models import Edge, Node, Snapshot

_FIELDS = (
    "unique_id", "resource_type", "name", "package_name", "original_file_path", "patch_path", "fqn", "tags",
    "test_name", "version", "config",
)  # fmt: skip


@lru_cache(maxsize=8)
def snapshot_manifest(snapshot_id: int) -> Manifest:
    """What selection reads of a snapshot, built once, with the engine's index
    (dbtlib.selectors): two plain queries read as tuples (no model instances, no per-row
    converters), each distinct config parsed once, nodes made with only the fields selection
    reads (no code, docs, columns, nor depends_on: the graph is the manifest's edges), the
    garbage collector held off meanwhile and kept off it afterwards. 100,000 nodes: 1.1 to
    1.3 s, half of it reading them."""
    snapshot = Snapshot.objects.only("manifest_schema_version", "project").get(pk=snapshot_id)
    with gc_paused(freeze=True), connection.cursor() as cursor:
        cursor.execute(f"SELECT parent, child FROM {Edge._meta.db_table} WHERE snapshot_id = %s", [snapshot_id])
        edges = cursor.fetchall()
        cursor.execute(
            f"SELECT {', '.join(_FIELDS)} FROM {Node._meta.db_table} WHERE snapshot_id = %s AND resource_type <> %s"
            ' ORDER BY unique_id COLLATE "C"',  # in Python's order: in memory as the engine's index reads them
            [snapshot_id, ResourceType.GROUP.value],  # dbt selects no group
        )
        rows = cursor.fetchall()
        # config as stored (jsonb, read as text by Django's connection) → parsed: tests of one kind share theirs
        configs: dict[str, dict] = {}
        nodes = {}
        for uid, resource_type, name, package, file_path, patch_path, fqn, tags, test_name, version, config in rows:
            nodes[uid] = DbtNode.unchecked(
                {
                    "unique_id": uid,
                    "resource_type": resource_type,
                    "name": name,
                    "package_name": package,
                    "original_file_path": file_path,
                    "patch_path": patch_path,
                    "fqn": tuple(fqn),
                    "tags": tuple(tags),
                    "config": configs[config] if config in configs else configs.setdefault(config, json.loads(config)),
                    "test_name": test_name,
                    "version": version,
                    "source_name": fqn[-2] if resource_type == ResourceType.SOURCE and len(fqn) > 1 else "",
                }
            )
        manifest = Manifest(
            nodes=nodes,
            edges=tuple(edges),
            schema_version=snapshot.manifest_schema_version,
            project_name=snapshot.project,
        )
        prepare(manifest)
    return manifest


class Selection(list[str]):
    """The unique_ids selected, sorted; `plain` when none needs escaping in JSON (printable
    ASCII without a quote or a backslash, as dbt's names are): the API writes them at once."""

    plain = False


@dbt_input_refused()
def select_in_snapshot(snapshot_id: int, select: str, exclude: str = "") -> Selection:
    """The unique_ids `dbt ls --select <select> --exclude <exclude>` lists for the snapshot;
    RequestError (INVALID_SELECTOR) for a selector dbt or the portal refuses."""
    selection = Selection(_selection(snapshot_id, select, exclude))
    selection.plain = _plain_ids(snapshot_id)
    return selection


@lru_cache(maxsize=64)  # at most 64 answers of up to a whole snapshot's ids (8 bytes each)
def _selection(snapshot_id: int, select: str, exclude: str) -> tuple[str, ...]:
    """A snapshot never changes, so neither does a selector's answer over it: a repeated
    selection (a shared explorer link, a page reloaded) is not selected again."""
    return tuple(select_in_manifest(snapshot_manifest(snapshot_id), select, exclude))


@lru_cache(maxsize=8)
def _plain_ids(snapshot_id: int) -> bool:
    """Whether no unique_id of the snapshot needs escaping in JSON."""
    ids = "".join(snapshot_manifest(snapshot_id).nodes)
    return ids.isascii() and ids.isprintable() and '"' not in ids and "\\" not in ids
