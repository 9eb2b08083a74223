"""The select API's door to the one selector engine (dbtlib.selectors): a snapshot's nodes
and edges become a Manifest once per process (snapshots never change), then selection is pure
Python over its precomputed graph."""

from __future__ import annotations

from functools import lru_cache

from dbtlib.manifest import DbtNode, Manifest, ResourceType
from dbtlib.selectors import select_in_manifest
from kernel.errors import dbt_input_refused
from lineage.models import Edge, Node, Snapshot

_FIELDS = (
    "unique_id", "resource_type", "name", "package_name", "path", "original_file_path", "patch_path", "fqn",
    "tags", "config", "test_name", "version",
)  # fmt: skip


@lru_cache(maxsize=8)
def snapshot_manifest(snapshot_id: int) -> Manifest:
    """What selection reads of a snapshot (no code, docs or columns), built once."""
    parents: dict[str, list[str]] = {}
    for parent, child in Edge.objects.filter(snapshot_id=snapshot_id).values_list("parent", "child").iterator():
        parents.setdefault(child, []).append(parent)
    nodes = []
    rows = Node.objects.filter(snapshot_id=snapshot_id).exclude(resource_type=ResourceType.GROUP)  # dbt selects none
    for row in rows.values(*_FIELDS).iterator(chunk_size=2000):
        fqn, tags = tuple(row.pop("fqn")), tuple(row.pop("tags"))
        is_source = row["resource_type"] == ResourceType.SOURCE
        nodes.append(
            DbtNode(
                **row,
                fqn=fqn,
                tags=tags,
                depends_on=tuple(parents.get(row["unique_id"], ())),
                source_name=fqn[-2] if is_source and len(fqn) > 1 else "",
            )
        )
    snapshot = Snapshot.objects.only("manifest_schema_version", "project").get(pk=snapshot_id)
    return Manifest.from_nodes(nodes, schema_version=snapshot.manifest_schema_version, project_name=snapshot.project)


@dbt_input_refused()
def select_in_snapshot(snapshot_id: int, select: str, exclude: str = "") -> list[str]:
    """The unique_ids `dbt ls --select <select> --exclude <exclude>` lists for the snapshot;
    RequestError (INVALID_SELECTOR) for a selector dbt or the portal refuses."""
    return select_in_manifest(snapshot_manifest(snapshot_id), select, exclude)
