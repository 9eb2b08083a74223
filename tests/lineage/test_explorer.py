"""The explorer's page and graph JSON: every node of the snapshot with its position, for
viewers and up; the layout it draws."""

from __future__ import annotations

import gzip
import re

from lineage.explorer import LAYOUT_VERSION, explorer_graph, layout
from lineage.models import Edge, ExplorerLayout, Node
from tests.conftest import PASSWORD
from tests.lineage.conftest import PROJECT

PAGE = f"/lineage/{PROJECT}/explore/"
GRAPH = f"/lineage/{PROJECT}/explore/graph.json"


def test_graph_json_has_every_node_with_its_position_and_edges(client, viewer, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    data = client.get(GRAPH).json()
    stored = {n.unique_id: n for n in Node.objects.filter(snapshot=snapshot)}
    assert data["snapshot"] == snapshot.pk and data["node_count"] == snapshot.node_count == len(stored)
    assert {n["id"] for n in data["nodes"]} == set(stored)
    fct_users = next(n for n in data["nodes"] if n["id"] == "model.inventory_transforms.fct_users")
    assert set(fct_users) == {"id", "name", "resource_type", "package", "folder", "tags", "x", "y"}
    assert (fct_users["name"], fct_users["resource_type"], fct_users["package"]) == (
        "fct_users", "model", "inventory_transforms"
    )  # fmt: skip
    assert fct_users["folder"] == stored[fct_users["id"]].folder
    raw_users = next(n for n in data["nodes"] if n["id"] == "source.inventory_transforms.raw.users")
    assert raw_users["name"] == "raw.users"  # as in source('raw', 'users')
    # Edges are pairs of indexes into nodes, and every one runs left to right.
    ids = [n["id"] for n in data["nodes"]]
    pairs = {(ids[a], ids[b]) for a, b in data["edges"]}
    assert pairs == set(Edge.objects.filter(snapshot=snapshot).values_list("parent", "child"))
    x = {n["id"]: n["x"] for n in data["nodes"]}
    assert all(x[parent] < x[child] for parent, child in pairs)
    # Folders: every node counted once, each cluster at its members' centroid.
    assert sum(f["count"] for f in data["folders"]) == len(stored)
    staging = next(f for f in data["folders"] if f["folder"] == "inventory_transforms/models/staging")
    members = [n for n in data["nodes"] if n["folder"] == staging["folder"]]
    assert staging["x"] == round(sum(n["x"] for n in members) / len(members), 2)


def test_graph_json_is_gzipped_and_revalidated(client, viewer, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    plain = client.get(GRAPH)
    zipped = client.get(GRAPH, headers={"accept-encoding": "gzip, deflate"})
    assert zipped["Content-Encoding"] == "gzip" and gzip.decompress(zipped.content) == plain.content
    assert client.get(GRAPH, headers={"if-none-match": plain["ETag"]}).status_code == 304


def test_graph_is_for_viewers_and_up(client, viewer, operator, nobody, snapshot):
    assert client.get(GRAPH).status_code == 302  # to the login page
    client.login(username=nobody.username, password=PASSWORD)
    assert client.get(GRAPH).status_code == 403
    assert client.get(PAGE).status_code == 403
    for user in (viewer, operator):
        client.login(username=user.username, password=PASSWORD)
        assert client.get(GRAPH).status_code == 200
        assert client.get(PAGE).status_code == 200
    assert client.get("/lineage/nope/explore/graph.json").status_code == 404


def test_page_loads_the_vendored_libraries_and_no_inline_script(client, viewer, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    page = client.get(PAGE).content.decode()
    scripts = re.findall(r"<script[^>]*>", page)
    assert all(" src=" in tag for tag in scripts), scripts
    for src in ("vendor/graphology/graphology.umd.min.js", "vendor/sigma/sigma.min.js", "lineage/explorer.js"):
        assert src in page
    assert f'data-graph-url="{GRAPH}"' in page
    assert f'data-node-url="/lineage/{PROJECT}/nodes/__ID__/"' in page
    # The project page and the project list lead to it.
    assert f'href="{PAGE}"' in client.get(f"/lineage/{PROJECT}/").content.decode()
    assert f'href="{PAGE}"' in client.get("/lineage/").content.decode()


def test_layout_is_layered_deterministic_and_wraps_tall_columns():
    roots = [f"r{i:03}" for i in range(100)]
    edges = [(r, f"c{r}") for r in roots] + [("cr000", "last")]
    ids = [*roots, *(f"c{r}" for r in roots), "last"]
    folder = dict.fromkeys(ids, "pkg/models")
    position = layout(ids, edges, folder)
    assert position == layout(list(reversed(ids)), list(reversed(edges)), folder)
    assert all(position[p][0] < position[c][0] for p, c in edges)
    # 201 nodes: 12 rows at most, so the 100 roots stand in 9 sub-columns side by side.
    assert max(y for _, y in position.values()) <= 11
    assert len({position[r][0] for r in roots}) == 9
    # Inside a column a child follows its parent's row.
    children = sorted(roots, key=lambda r: (position[f"c{r}"][0], position[f"c{r}"][1]))
    assert children == sorted(roots, key=lambda r: (position[r][0], position[r][1]))


def test_the_layout_is_stored_once_for_every_process_and_goes_with_its_snapshot(client, viewer, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    assert not ExplorerLayout.objects.filter(snapshot=snapshot).exists()
    first = client.get(GRAPH).content
    stored = ExplorerLayout.objects.get(snapshot=snapshot)
    assert gzip.decompress(stored.gzipped) == first
    explorer_graph.cache_clear()  # as another web process: it reads the stored layout
    assert client.get(GRAPH).content == first
    assert ExplorerLayout.objects.filter(snapshot=snapshot).count() == 1
    snapshot.delete()
    assert not ExplorerLayout.objects.exists()


def test_a_layout_stored_by_an_older_version_is_laid_out_again(client, viewer, snapshot):
    client.login(username=viewer.username, password=PASSWORD)
    ExplorerLayout.objects.create(snapshot=snapshot, version=LAYOUT_VERSION - 1, gzipped=gzip.compress(b"{}"))
    explorer_graph.cache_clear()
    answer = client.get(GRAPH)
    assert answer.json()["node_count"] == snapshot.node_count
    assert ExplorerLayout.objects.get(snapshot=snapshot).version == LAYOUT_VERSION
    assert str(LAYOUT_VERSION) in answer["ETag"]  # an older layout cached by a browser no longer matches
