"""Graph queries over one snapshot's edges, as recursive CTEs in PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q

from dbtlib.manifest import TEST_TYPES
from lineage.models import Edge, Node, NodeStatus, Snapshot

_EDGE = Edge._meta.db_table
MAX_PICTURE_NODES = 300


def _rows(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def walk(snapshot_id: int, start: set[str], *, upstream: bool, depth: int | None) -> dict[str, int]:
    """Ancestors (upstream) or descendants of `start`, each with its distance in hops
    (recursive CTE over the snapshot's edges; the start nodes themselves excluded unless
    reachable from another start node)."""
    if not start or depth == 0:
        return {}
    near, far = ("child", "parent") if upstream else ("parent", "child")
    if depth is None:
        # Unbounded: deduplicate on the node alone, so each is visited once.
        sql = f"""
            WITH RECURSIVE reached(uid) AS (
                SELECT e.{far} FROM {_EDGE} e WHERE e.snapshot_id = %s AND e.{near} = ANY(%s)
                UNION
                SELECT e.{far} FROM reached r JOIN {_EDGE} e ON e.snapshot_id = %s AND e.{near} = r.uid
            )
            SELECT uid, 0 FROM reached"""
        return {uid: 0 for uid, _ in _rows(sql, [snapshot_id, list(start), snapshot_id])}
    sql = f"""
        WITH RECURSIVE reached(uid, hops) AS (
            SELECT e.{far}, 1 FROM {_EDGE} e WHERE e.snapshot_id = %s AND e.{near} = ANY(%s)
            UNION
            SELECT e.{far}, r.hops + 1 FROM reached r
            JOIN {_EDGE} e ON e.snapshot_id = %s AND e.{near} = r.uid
            WHERE r.hops < %s
        )
        SELECT uid, min(hops) FROM reached GROUP BY uid"""
    return dict(_rows(sql, [snapshot_id, list(start), snapshot_id, depth]))


@dataclass
class Neighbourhood:
    """What the lineage picture draws: nodes with their signed distance (upstream < 0)."""

    nodes: list[dict] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    truncated: bool = False


def neighbourhood(snapshot: Snapshot, unique_id: str, *, up: int, down: int) -> Neighbourhood:
    """The node, `up` hops of ancestors and `down` hops of descendants; other tests are left
    out (they are listed on the node page), and at most MAX_PICTURE_NODES, nearest first."""
    hops = {unique_id: 0}
    for uid, n in walk(snapshot.pk, {unique_id}, upstream=True, depth=up).items():
        hops.setdefault(uid, -n)
    for uid, n in walk(snapshot.pk, {unique_id}, upstream=False, depth=down).items():
        hops.setdefault(uid, n)
    rows = (
        Node.objects.filter(snapshot=snapshot, unique_id__in=list(hops))
        .exclude(Q(resource_type__in=TEST_TYPES) & ~Q(unique_id=unique_id))
        .values("unique_id", "name", "resource_type", "materialization", "package_name", "fqn")
    )
    nodes = sorted(rows, key=lambda r: (abs(hops[r["unique_id"]]), r["name"]))
    result = Neighbourhood(truncated=len(nodes) > MAX_PICTURE_NODES)
    nodes = nodes[:MAX_PICTURE_NODES]
    kept = [n["unique_id"] for n in nodes]
    statuses = dict(
        NodeStatus.objects.filter(project=snapshot.project, unique_id__in=kept).values_list("unique_id", "status")
    )
    for node in nodes:
        fqn = node.pop("fqn")
        # Sources read as source_name.table, as in ref/source calls.
        node["label"] = (
            f"{fqn[-2]}.{node['name']}" if node["resource_type"] == "source" and len(fqn) > 1 else node["name"]
        )
        node["hops"] = hops[node["unique_id"]]
        node["status"] = statuses.get(node["unique_id"], "")
    result.nodes = nodes
    result.edges = _rows(
        f"SELECT parent, child FROM {_EDGE} WHERE snapshot_id = %s AND parent = ANY(%s) AND child = ANY(%s)",
        [snapshot.pk, kept, kept],
    )
    return result


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Longest-path layer of each node, left to right; edges closing a cycle (possible
    between folders, never between dbt nodes) are ignored."""
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for parent, child in edges:
        children[parent].append(child)
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    back_edges: set[tuple[str, str]] = set()
    for root in nodes:
        if root in state:
            continue
        stack = [(root, iter(children[root]))]
        state[root] = 1
        while stack:
            node, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state.get(step) == 1:
                back_edges.add((node, step))
            elif step not in state:
                state[step] = 1
                stack.append((step, iter(children[step])))
    layer = dict.fromkeys(nodes, 0)
    for node in reversed(order):  # topological order of the graph without back edges
        for child in children[node]:
            if (node, child) not in back_edges:
                layer[child] = max(layer[child], layer[node] + 1)
    return layer
