"""One search over everything a reader may open: lineage's nodes, columns and tags (of each
project's current snapshot), jobs, runs and environments. Ranked by how a thing matched,
best first: exact name, name prefix, substring of the name, tag, column name, description;
bounded: at most `per_kind` of each kind, at most `limit` in all."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse

from accounts.models import Capability
from accounts.permissions import can
from kernel.errors import RequestError
from lineage import search as lineage_search
from lineage.search import DESCRIPTION, EXACT, PREFIX, SUBSTRING, TIER_NAMES
from runs.models import Environment, Job, Run

MAX_QUERY = 200
PER_KIND = 5
MAX_PER_KIND = 50
LIMIT = 20
MAX_LIMIT = 300
# Who may see each kind; its order breaks ties between kinds of one tier.
KINDS: dict[str, str] = {
    "node": Capability.READ,
    "column": Capability.READ,
    "tag": Capability.READ,
    "job": Capability.READ,
    "run": Capability.READ,
    "environment": Capability.READ,
}
RUN_ID = re.compile(r"^(?:run\s*)?#?\s*(\d{1,18})$", re.IGNORECASE)


@dataclass(frozen=True)
class Result:
    kind: str
    name: str
    url: str
    project: str
    detail: str  # what it is: a node's resource type, a run's state and title, …
    snippet: str  # a description's start, or ""
    match: str  # exact, prefix, substring, tag, column, description
    tier: int

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "url": self.url,
            "project": self.project,
            "detail": self.detail,
            "snippet": self.snippet,
            "match": self.match,
        }


def check_query(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_QUERY:
        raise RequestError(f"a search is at most {MAX_QUERY} characters", field="q")
    if "\x00" in text:
        raise RequestError("a search cannot hold a NUL character", field="q")
    return text


def kinds_for(user) -> list[str]:
    return [kind for kind, capability in KINDS.items() if can(user, capability)]


def search(
    user, text: str, *, per_kind: int = PER_KIND, limit: int = LIMIT, kinds: list[str] | None = None
) -> list[Result]:
    """The ranked results the user may see, best first (tier, then kind, then each kind's own order)."""
    text = check_query(text)
    allowed = [k for k in kinds_for(user) if kinds is None or k in kinds]
    if not text or not allowed:
        return []
    found: dict[str, list[Result]] = {}
    for kind in allowed:
        found[kind] = FINDERS[kind](user, text, per_kind)
    order = list(KINDS)
    ranked = sorted(
        ((r, order.index(r.kind), i) for kind in allowed for i, r in enumerate(found[kind])),
        key=lambda item: (item[0].tier, item[1], item[2]),
    )
    return [r for r, _, _ in ranked][:limit]


def _node_url(project: str, unique_id: str) -> str:
    return reverse("lineage-node", args=[project, unique_id])


def _nodes(user, text: str, n: int) -> list[Result]:
    return [
        Result(
            kind="node",
            name=hit.name,
            url=_node_url(hit.project, hit.unique_id),
            project=hit.project,
            detail=hit.resource_type,
            snippet=hit.description,
            match=TIER_NAMES[hit.tier],
            tier=hit.tier,
        )
        for hit in lineage_search.find_nodes(text, n)
    ]


def _columns(user, text: str, n: int) -> list[Result]:
    return [
        Result(
            kind="column",
            name=hit.name,
            url=_node_url(hit.project, hit.unique_id) + "#column-" + quote(hit.name, safe=""),  # the column's row
            project=hit.project,
            detail=f"{hit.resource_type} {hit.node_name}",
            snippet=hit.description,
            match=TIER_NAMES[hit.tier],
            tier=hit.tier,
        )
        for hit in lineage_search.find_columns(text, n)
    ]


def _tags(user, text: str, n: int) -> list[Result]:
    return [
        Result(
            kind="tag",
            name=hit.name,
            url=reverse("lineage-project", args=[hit.project]) + "?" + urlencode({"tag": hit.name}),
            project=hit.project,
            detail="tag",
            snippet="",
            match=TIER_NAMES[hit.tier],
            tier=hit.tier,
        )
        for hit in lineage_search.find_tags(text, n)
    ]


def _by_name(rows: QuerySet, text: str, *fields: str) -> QuerySet:
    """Rows whose name (or one of `fields`, a description tier) holds `text`, with their tier."""
    matches = Q(name__icontains=text)
    for field in fields:
        matches |= Q(**{f"{field}__icontains": text})
    tier = Case(
        When(name__iexact=text, then=Value(EXACT)),
        When(name__istartswith=text, then=Value(PREFIX)),
        When(name__icontains=text, then=Value(SUBSTRING)),
        default=Value(DESCRIPTION),
        output_field=IntegerField(),
    )
    return rows.filter(matches).annotate(tier=tier)


def _jobs(user, text: str, n: int) -> list[Result]:
    jobs = _by_name(Job.objects.all(), text, "description").order_by("tier", "name", "pk")
    fields = ("pk", "name", "project", "description", "environment__name", "tier")
    return [
        Result(
            kind="job",
            name=job["name"],
            url=reverse("job-detail", args=[job["pk"]]),
            project=job["project"],
            detail=f"job on {job['environment__name']}",
            snippet=job["description"][:160],
            match=TIER_NAMES[job["tier"]],
            tier=job["tier"],
        )
        for job in jobs.values(*fields)[:n]
    ]


def _environments(user, text: str, n: int) -> list[Result]:
    environments = _by_name(Environment.objects.all(), text).order_by("tier", "name", "project", "pk")
    editable = can(user, Capability.MANAGE_SCHEDULES)
    return [
        Result(
            kind="environment",
            name=env["name"],
            url=(
                reverse("environment-edit", args=[env["pk"]])
                if editable
                else reverse("environment-list") + f"#environment-{env['pk']}"
            ),
            project=env["project"],
            detail=f"environment, target {env['target_name']}",
            snippet="",
            match=TIER_NAMES[env["tier"]],
            tier=env["tier"],
        )
        for env in environments.values("pk", "name", "project", "target_name", "tier")[:n]
    ]


def _runs(user, text: str, n: int) -> list[Result]:
    """A run by its number: `42`, `#42` or `run 42`."""
    found = RUN_ID.match(text)
    if not found or n <= 0:
        return []
    run = Run.objects.select_related("job").filter(pk=int(found.group(1))).first()
    if run is None:
        return []
    return [
        Result(
            kind="run",
            name=f"run #{run.pk}",
            url=reverse("run-detail", args=[run.pk]),
            project=run.project,
            detail=f"{run.state} · {run.title}",
            snippet=run.cause[:160],
            match=TIER_NAMES[EXACT],
            tier=EXACT,
        )
    ]


FINDERS = {
    "node": _nodes,
    "column": _columns,
    "tag": _tags,
    "job": _jobs,
    "run": _runs,
    "environment": _environments,
}
