"""The whole project as one graph for the explorer page: every node of a snapshot with a
position, laid out once per snapshot on the server (snapshots never change), so the browser
only draws.

The layout is layered and deterministic: a node's column is its longest-path depth in the DAG
(sources and seeds left, exposures and tests right); inside a column nodes are ordered by folder,
then by the mean row of their parents, then by name, so a folder is a band and its cluster
(its members' centroid) sits where they are. A column taller than the picture's height wraps
into side-by-side sub-columns, keeping a 15,000-node project about as wide as it is tall."""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache

from lineage.graph import layers
from lineage.models import Edge, ExplorerLayout, Node, Snapshot

# Above this many nodes the explorer opens with every folder collapsed into a cluster.
CLUSTER_THRESHOLD = 2000
# Width over height of the picture the wrapping aims at (a screen's).
ASPECT = 1.6
COLUMN_GAP = 3.0  # between two layers, in sub-columns
# What the stored layouts and the browsers' cached copies were made by: a change to the layout or
# to the JSON's shape raises it, and each snapshot is laid out again when next opened.
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class ExplorerGraph:
    """The explorer's JSON, gzipped; plain on demand (a client that takes no gzip)."""

    gzipped: bytes
    etag: str

    @property
    def body(self) -> bytes:
        return gzip.decompress(self.gzipped)


def layout(ids: list[str], edges: list[tuple[str, str]], folder: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(x, y) of each node: x grows downstream, y downwards (rows)."""
    if not ids:
        return {}
    layer = layers(ids, edges)
    parents: dict[str, list[str]] = {uid: [] for uid in ids}
    for parent, child in edges:
        parents[child].append(parent)
    columns: dict[int, list[str]] = {}
    for uid in sorted(ids):
        columns.setdefault(layer[uid], []).append(uid)
    height = max(8, math.ceil(math.sqrt(len(ids) / ASPECT)))
    place: dict[str, float] = {}  # a node's row as a fraction of its column (0 top, 1 bottom)
    position: dict[str, tuple[float, float]] = {}
    x = 0.0
    for depth in sorted(columns):
        column = columns[depth]

        def mean_parent_row(uid: str) -> float:
            rows = [place[p] for p in parents[uid] if p in place]
            return sum(rows) / len(rows) if rows else 0.5

        column.sort(key=lambda uid: (folder[uid], mean_parent_row(uid), uid))
        per_column = min(height, len(column))
        offset = (height - per_column) / 2
        for i, uid in enumerate(column):
            sub, row = divmod(i, per_column)
            place[uid] = i / max(1, len(column) - 1)
            position[uid] = (round(x + sub, 2), round(offset + row, 2))
        x += math.ceil(len(column) / per_column) + COLUMN_GAP - 1
    return position


def _build(snapshot: Snapshot) -> dict:
    rows = list(
        Node.objects.filter(snapshot=snapshot)
        .order_by("unique_id")
        .values_list("unique_id", "name", "resource_type", "package_name", "folder", "tags", "fqn")
    )
    ids = [row[0] for row in rows]
    known = set(ids)
    pairs = Edge.objects.filter(snapshot=snapshot).order_by("parent", "child").values_list("parent", "child")
    edges = [(parent, child) for parent, child in pairs if parent in known and child in known]
    folder = {row[0]: row[4] for row in rows}
    position = layout(ids, edges, folder)
    index = {uid: i for i, uid in enumerate(ids)}
    nodes = []
    folders: dict[str, dict] = {}
    for uid, name, resource_type, package, folder_name, tags, fqn in rows:
        x, y = position[uid]
        # Sources read as source_name.table, as in source() calls and the lineage picture.
        label = f"{fqn[-2]}.{name}" if resource_type == "source" and len(fqn) > 1 else name
        nodes.append(
            {
                "id": uid,
                "name": label,
                "resource_type": resource_type,
                "package": package,
                "folder": folder_name,
                "tags": tags,
                "x": x,
                "y": y,
            }
        )
        entry = folders.setdefault(folder_name, {"folder": folder_name, "count": 0, "x": 0.0, "y": 0.0})
        entry["count"] += 1
        entry["x"] += x
        entry["y"] += y
    for entry in folders.values():  # a cluster sits at its members' centroid
        entry["x"] = round(entry["x"] / entry["count"], 2)
        entry["y"] = round(entry["y"] / entry["count"], 2)
    return {
        "snapshot": snapshot.pk,
        "project": snapshot.project,
        "node_count": len(nodes),
        "cluster_threshold": CLUSTER_THRESHOLD,
        "nodes": nodes,
        # Tuples, not lists: the collector stops tracking pairs of ints, where it would walk
        # 165,000 lists at 100,000 nodes (1.4 s in a profile on a loaded machine).
        "edges": [(index[parent], index[child]) for parent, child in edges],
        "folders": [folders[name] for name in sorted(folders)],
    }


@lru_cache(maxsize=4)
def explorer_graph(snapshot_id: int) -> ExplorerGraph:
    """The snapshot's nodes (id, name, resource_type, package, folder, tags, x, y), its edges
    as pairs of indexes into the nodes, and its folders (count and centroid): laid out by the
    first process to open the snapshot and stored (ExplorerLayout), read by the others."""
    stored = (
        ExplorerLayout.objects.filter(snapshot_id=snapshot_id, version=LAYOUT_VERSION)
        .values_list("gzipped", flat=True)
        .first()
    )
    if stored is None:
        body = json.dumps(_build(Snapshot.objects.get(pk=snapshot_id)), separators=(",", ":")).encode()
        stored = gzip.compress(body, compresslevel=6)
        # Two processes may lay it out at once: both answers are the same.
        ExplorerLayout.objects.bulk_create(
            [ExplorerLayout(snapshot_id=snapshot_id, version=LAYOUT_VERSION, gzipped=stored)],
            update_conflicts=True,
            unique_fields=["snapshot"],
            update_fields=["version", "gzipped"],
        )
    return ExplorerGraph(gzipped=bytes(stored), etag=f'"explorer-{snapshot_id}-{LAYOUT_VERSION}"')
