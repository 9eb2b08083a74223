from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.models import Capability
from accounts.permissions import can, requires
from audit.models import Source
from dbtlib.manifest import TEST_TYPES
from kernel.db import bounded_page, viewer_statement_timeout
from kernel.errors import RequestError, form_error
from lineage import columns as column_lineage
from lineage import freshness
from lineage.explorer import explorer_graph
from lineage.forms import GitProjectForm, ManifestUploadForm
from lineage.git_projects import register_git_project
from lineage.graph import layers, neighbourhood
from lineage.models import ColumnCoverage, Edge, GitProject, Node, NodeStatus, Snapshot
from lineage.node_search import project_nodes
from lineage.objects import governed, group_members, group_of, other_versions
from lineage.services import check_upload_size, ingest_upload, project_exists, project_names

PAGE_SIZE = 50
MAX_HOPS = 10
GROUP_NODE_LIMIT = 500


def _project_or_404(project: str) -> str:
    if not project_exists(project):
        raise Http404(f"No dbt project named {project!r}.")
    return project


def snapshot_for(project: str, snapshot_id: str | None) -> Snapshot:
    """?snapshot=<id> of this project, else its current snapshot (404 when there is none)."""
    snapshots = Snapshot.objects.of_project(project)
    if snapshot_id:
        if not snapshot_id.isdigit():
            raise Http404("No such snapshot.")
        return get_object_or_404(snapshots, pk=int(snapshot_id))
    snapshot = snapshots.current().first()
    if snapshot is None:
        raise Http404(f"No manifest has been ingested for {project!r} yet.")
    return snapshot


def hops_param(value: str | None, default: int = 2) -> int:
    return min(int(value), MAX_HOPS) if value and value.isdigit() else default


@requires(Capability.READ)
def project_list(request: HttpRequest) -> HttpResponse:
    """Every project with its current snapshot and, for a git project, its repository; an
    admin registers a git project here (its webhook secret is shown once, on the answer)."""
    admin = can(request.user, Capability.ADMINISTER)
    if request.method == "POST" and not admin:
        raise PermissionDenied("Only an admin registers a git project.")
    form = GitProjectForm(request.POST or None) if admin else None
    registered = None
    if form is not None and request.method == "POST" and form.is_valid():
        try:
            registered = register_git_project(actor=request.user, source=Source.WEB, **form.cleaned_data)
        except RequestError as exc:
            form_error(form, exc)
        else:
            form = GitProjectForm()
    current = {s.project: s for s in Snapshot.objects.current()}
    gits = {g.name: g for g in GitProject.objects.all()}
    projects = [{"name": name, "snapshot": current.get(name), "git": gits.get(name)} for name in project_names()]
    ctx = {"projects": projects, "form": form, "registered": registered}
    return render(request, "lineage/index.html", ctx, status=400 if form is not None and form.errors else 200)


@requires(Capability.READ)
@bounded_page
def project_detail(request: HttpRequest, project: str) -> HttpResponse:
    _project_or_404(project)
    snapshots = Snapshot.objects.of_project(project)
    snapshot = snapshot_for(project, request.GET.get("snapshot")) if snapshots.exists() else None
    ctx: dict = {"project": project, "snapshot": snapshot, "snapshots": snapshots[:20]}
    if snapshot is not None:
        ctx["coverage"] = ColumnCoverage.objects.filter(snapshot=snapshot).first()
        search = request.GET.get("q", "").strip()
        resource_type = request.GET.get("resource_type", "")
        tag = request.GET.get("tag", "").strip()
        nodes = project_nodes(
            snapshot.pk,
            search=search,
            resource_type=resource_type,
            tag=tag,
            fields=(
                "unique_id",
                "name",
                "resource_type",
                "original_file_path",
                "materialization",
                "tags",
                "description",
                "details",
            ),
        )
        query = request.GET.copy()
        query.pop("page", None)
        ctx.update(
            search=search,
            resource_type=resource_type,
            tag=tag,
            resource_types=sorted(snapshot.counts_by_type),
            page=Paginator(nodes, PAGE_SIZE).get_page(request.GET.get("page")),
            query=query.urlencode(),
        )
    return render(request, "lineage/project.html", ctx)


@requires(Capability.READ)
def node_detail(request: HttpRequest, project: str, unique_id: str) -> HttpResponse:
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    node = get_object_or_404(Node, snapshot=snapshot, unique_id=unique_id)
    up, down = hops_param(request.GET.get("up")), hops_param(request.GET.get("down"))
    test_ids = Edge.objects.filter(snapshot=snapshot, parent=unique_id).values("child")
    tests = list(
        Node.objects.filter(snapshot=snapshot, unique_id__in=test_ids, resource_type__in=TEST_TYPES).only(
            "unique_id", "name", "column_name", "config"
        )
    )
    statuses = {
        s.unique_id: s
        for s in NodeStatus.objects.filter(project=project, unique_id__in=[unique_id, *(t.unique_id for t in tests)])
    }
    for test in tests:
        test.latest = statuses.get(test.unique_id)
    parents = list(Edge.objects.filter(snapshot=snapshot, child=unique_id).values_list("parent", flat=True))
    picture = neighbourhood(snapshot, unique_id, up=up, down=down)
    snapshot_query = f"?snapshot={snapshot.pk}" if not snapshot.is_current else ""
    graph = {
        "center": unique_id,
        "nodes": [
            {**n, "url": reverse("lineage-node", args=[project, n["unique_id"]]) + snapshot_query}
            for n in picture.nodes
        ],
        "edges": picture.edges,
    }
    ctx = {
        "project": project,
        "snapshot": snapshot,
        "node": node,
        "latest": statuses.get(unique_id),
        "tests": tests,
        "parents": parents,
        "graph": graph,
        "truncated": picture.truncated,
        "up": up,
        "down": down,
        "snapshot_query": snapshot_query,
    }
    test_uids = {t.unique_id for t in tests}
    ctx["children"] = [
        uid
        for uid in Edge.objects.filter(snapshot=snapshot, parent=unique_id).values_list("child", flat=True)
        if uid not in test_uids
    ]
    ctx.update(
        details=node.details,
        group=group_of(snapshot, node),
        members=group_members(snapshot, node),
        versions=other_versions(snapshot, node),
        governed=governed(node),
        model_of=next((uid for uid in parents if uid.startswith("model.")), ""),
        has_columns=bool(node.columns) or node.resource_type in _TABLE_TYPES,
    )
    if ctx["has_columns"]:
        ctx.update(_columns_context(project, snapshot, node, snapshot_query))
    return render(request, "lineage/node.html", ctx)


def _columns_context(project: str, snapshot: Snapshot, node: Node, snapshot_query: str) -> dict:
    """The columns table's rows: each column with links to its upstream and downstream columns."""
    found = column_lineage.node_columns(snapshot, node)
    refs = [ref for c in found.columns for ref in (*c["upstream"], *c["downstream"])]
    names = column_lineage.node_names(snapshot, (ref["node"] for ref in refs))
    for ref in refs:
        ref["label"] = f"{names.get(ref['node'], (ref['node'], ''))[0]}.{ref['column']}"
        ref["url"] = reverse("lineage-node", args=[project, ref["node"]]) + snapshot_query + _anchor(ref["column"])
    return {"column_rows": found.columns, "columns_note": found.note, "columns_analysed": found.analysed}


def _anchor(column: str) -> str:
    """The fragment of a column's row on its node page (the row's id is column-<name>)."""
    return "#column-" + quote(column, safe="")


# Kinds that are tables in the warehouse: their pages list columns and tests even when empty.
_TABLE_TYPES = ("model", "seed", "snapshot", "source")


@requires(Capability.READ)
def explorer_columns(request: HttpRequest, project: str) -> JsonResponse:
    """JSON for the explorer's column mode: ?node= (a unique_id, else a name) gives the node's
    columns; with &column= also that column's upstream and downstream column graph, in the
    shape of the node page's picture (static/lineage/lineage.js draws it)."""
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    wanted = request.GET.get("node", "").strip()
    nodes = Node.objects.filter(snapshot=snapshot).exclude(resource_type__in=TEST_TYPES)
    node = nodes.filter(unique_id=wanted).first() or nodes.filter(name=wanted).order_by("unique_id").first()
    if node is None:
        return JsonResponse({"detail": f"No node {wanted!r} in this snapshot."}, status=404)
    with viewer_statement_timeout():
        found = column_lineage.node_columns(snapshot, node)
        answer: dict = {"node": node.unique_id, "columns": [c["name"] for c in found.columns], "note": found.note}
        column = request.GET.get("column", "")
        if column and column.lower() not in {name.lower() for name in answer["columns"]}:
            return JsonResponse({"detail": f"{node.unique_id} has no column {column!r}."}, status=404)
        if column:
            answer["graph"] = _column_picture(project, snapshot, node, column)
    return JsonResponse(answer)


def _column_picture(project: str, snapshot: Snapshot, node: Node, column: str) -> dict:
    graph = column_lineage.column_graph(snapshot, node.unique_id, column)
    names = column_lineage.node_names(snapshot, (c["node"] for c in graph["columns"]))
    snapshot_query = f"?snapshot={snapshot.pk}" if not snapshot.is_current else ""
    key = "{}|{}".format  # unique_ids hold no "|"
    return {
        "center": key(node.unique_id, column.lower()),
        "nodes": [
            {
                "unique_id": key(c["node"], c["column"].lower()),
                "label": f"{names.get(c['node'], (c['node'], ''))[0]}.{c['column']}",
                "name": f"{c['node']}.{c['column']}",
                "resource_type": names.get(c["node"], ("", "model"))[1],
                "status": "" if c["resolved"] else "unresolved",
                "hops": c["depth"],
                "url": reverse("lineage-node", args=[project, c["node"]]) + snapshot_query + _anchor(c["column"]),
                "title": f"{c['column']} of {c['node']}" + ("" if c["resolved"] else f" (not resolved: {c['note']})"),
            }
            for c in graph["columns"]
        ],
        "edges": [[key(a[0], a[1].lower()), key(b[0], b[1].lower())] for a, b in graph["edges"]],
        "truncated": graph["truncated"],
    }


@requires(Capability.READ)
def project_freshness(request: HttpRequest, project: str) -> HttpResponse:
    """Each source's latest `dbt source freshness` result, its thresholds and its recent runs."""
    _project_or_404(project)
    history = freshness.history(project)
    sources = [{"latest": rows[0], "history": rows} for rows in history.values()]
    return render(request, "lineage/freshness.html", {"project": project, "sources": sources})


@requires(Capability.READ)
def project_groups(request: HttpRequest, project: str) -> HttpResponse:
    """The whole project at any size: one box and one row per folder; a folder's nodes are
    fetched only when its row is opened."""
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    ctx = {"project": project, "snapshot": snapshot, "folders": len(snapshot.folder_summary)}
    return render(request, "lineage/groups.html", {**ctx, "body": _groups_body(snapshot.pk, snapshot.is_current)})


@lru_cache(maxsize=8)
def _groups_body(snapshot_id: int, is_current: bool) -> str:
    """The folder picture and rows of a snapshot, rendered once per process: they are the same
    for every reader and a snapshot never changes (at 100,000 nodes, 1,200 folders and 4 MB
    of HTML: about 300 ms to render)."""
    snapshot = Snapshot.objects.get(pk=snapshot_id)
    groups = [{**g, "fed_by": [], "total": sum(g["counts"].values())} for g in snapshot.folder_summary]
    by_folder = {g["folder"]: g for g in groups}
    links = [(g["folder"], downstream) for g in groups for downstream in g["feeds"]]
    for upstream, downstream in links:
        by_folder[downstream]["fed_by"].append(upstream)
    for g in groups:  # joined here: thousands of template loop iterations cost ~50 ms at 10,000 nodes
        g["feeds_text"] = ", ".join(f"{f} ({n} edge{'s' if n != 1 else ''})" for f, n in g["feeds"].items())
        g["fed_by_text"] = ", ".join(g["fed_by"])
    layer = layers(list(by_folder), links)
    graph = {
        "center": "",
        "nodes": [
            {
                "unique_id": g["folder"],
                "label": "/".join(g["folder"].split("/")[-2:]) + f" ({g['total']})",
                "name": g["folder"],
                "resource_type": "folder",
                "status": "",
                "hops": layer[g["folder"]],
                "url": f"#folder-{i}",
            }
            for i, g in enumerate(groups, start=1)
        ],
        "edges": links,
    }
    return render_to_string(
        "lineage/snippets/groups_body.html",
        {"project": snapshot.project, "snapshot": snapshot, "is_current": is_current, "groups": groups, "graph": graph},
    )


@requires(Capability.READ)
def group_nodes(request: HttpRequest, project: str) -> JsonResponse:
    """JSON: the nodes of one folder (at most GROUP_NODE_LIMIT), for the whole-project view."""
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    folder = request.GET.get("folder", "")
    nodes = list(
        Node.objects.filter(snapshot=snapshot, folder=folder)
        .exclude(resource_type__in=TEST_TYPES)
        .order_by("name")
        .values("unique_id", "name", "resource_type", "materialization")[: GROUP_NODE_LIMIT + 1]
    )
    statuses = dict(
        NodeStatus.objects.filter(project=project, unique_id__in=[n["unique_id"] for n in nodes]).values_list(
            "unique_id", "status"
        )
    )
    snapshot_query = f"?snapshot={snapshot.pk}" if not snapshot.is_current else ""
    for node in nodes:
        node["status"] = statuses.get(node["unique_id"], "")
        node["url"] = reverse("lineage-node", args=[project, node["unique_id"]]) + snapshot_query
    return JsonResponse({"folder": folder, "nodes": nodes[:GROUP_NODE_LIMIT], "more": len(nodes) > GROUP_NODE_LIMIT})


@requires(Capability.READ)
def explorer(request: HttpRequest, project: str) -> HttpResponse:
    """The whole project as an interactive graph (static/lineage/explorer.js draws it)."""
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    snapshot_query = f"?snapshot={snapshot.pk}" if not snapshot.is_current else ""
    return render(
        request,
        "lineage/explorer.html",
        {
            "project": project,
            "snapshot": snapshot,
            "snapshot_query": snapshot_query,
            "resource_types": sorted(snapshot.counts_by_type),
            "node_url": reverse("lineage-node", args=[project, "__ID__"]) + snapshot_query,
        },
    )


@requires(Capability.READ)
def explorer_data(request: HttpRequest, project: str) -> HttpResponse:
    """JSON: every node of the snapshot with its position, its edges and folders (lineage/explorer.py)."""
    snapshot = snapshot_for(_project_or_404(project), request.GET.get("snapshot"))
    graph = explorer_graph(snapshot.pk)
    if request.headers.get("If-None-Match") == graph.etag:
        response = HttpResponse(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = HttpResponse(graph.gzipped, content_type="application/json")
        response["Content-Encoding"] = "gzip"
    else:
        response = HttpResponse(graph.body, content_type="application/json")
    # A snapshot never changes: the browser may keep it, revalidating (rights may change).
    response["ETag"] = graph.etag
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Accept-Encoding, Cookie"
    return response


@requires(Capability.OPERATE)
def upload_manifest(request: HttpRequest, project: str) -> HttpResponse:
    _project_or_404(project)
    status = 200
    if request.method == "POST":
        try:
            check_upload_size("request", int(request.META.get("CONTENT_LENGTH") or 0))
        except RequestError as exc:  # refused before the body is read
            form = ManifestUploadForm()
            form_error(form, exc)
            return render(request, "lineage/upload.html", {"project": project, "form": form}, status=exc.status)
    form = ManifestUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                snapshot = ingest_upload(
                    project,
                    form.cleaned_data["manifest"],
                    form.cleaned_data.get("catalog"),
                    actor=request.user,
                    source=Source.WEB,
                )
            except RequestError as exc:
                form_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Manifest ingested: snapshot #{snapshot.pk}, {snapshot.node_count} nodes.")
                return redirect("lineage-project", project)
    return render(request, "lineage/upload.html", {"project": project, "form": form}, status=status)
