"""The audit trail's page (with CSV/JSON export) and its read-only API. They live in
accounts, not audit, because they are gated by capabilities: audit imports no other app."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from rest_framework import serializers, viewsets

from accounts.models import Capability
from accounts.permissions import Requires, can, requires
from audit.display import for_page, mask_env_values
from audit.filters import AuditEventFilter
from audit.models import AuditEvent
from kernel.db import bounded_page, viewer_statement_timeout

EXPORT_FIELDS = [
    "id", "created_at", "actor_username", "action", "target_type", "target_id", "target_label",
    "before", "after", "reason", "source", "request_id", "prev_hash", "hash",
]  # fmt: skip


class _Echo:
    def write(self, value: str) -> str:
        return value


def shown_to(user) -> Callable[[Any], Any]:
    """A row's before/after as `user` may read it: env_vars values masked below the operator
    role (audit.display.mask_env_values), as the environments API shows them."""
    if can(user, Capability.OPERATE):
        return lambda value: value
    return mask_env_values


def _rows(queryset, shown: Callable[[Any], Any]) -> Iterator[dict]:
    for row in queryset.order_by("id").values(*EXPORT_FIELDS).iterator():
        row["created_at"] = row["created_at"].isoformat()
        row["before"], row["after"] = shown(row["before"]), shown(row["after"])
        yield row


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value) -> object:
    """A cell a spreadsheet shows as text: one that would start a formula (`=HYPERLINK(…)`)
    gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _json_chunks(rows: Iterator[dict]) -> Iterator[str]:
    """A JSON array, one event per chunk: the export never holds the table in memory."""
    yield "["
    for index, row in enumerate(rows):
        yield ("," if index else "") + "\n" + json.dumps(row)
    yield "\n]\n"


def _csv_lines(rows):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for row in rows:
        cells = [json.dumps(row[f]) if f in ("before", "after") else row[f] for f in EXPORT_FIELDS]
        yield writer.writerow([_csv_cell(cell) for cell in cells])


@requires(Capability.READ)
@bounded_page
def audit_list(request: HttpRequest) -> HttpResponse:
    events = AuditEventFilter(request.GET, queryset=AuditEvent.objects.all())
    queryset = events.qs if events.is_valid() else AuditEvent.objects.none()
    export = request.GET.get("format")
    shown = shown_to(request.user)
    if export in ("csv", "json"):
        if export == "json":
            response = StreamingHttpResponse(_json_chunks(_rows(queryset, shown)), content_type="application/json")
        else:
            response = StreamingHttpResponse(_csv_lines(_rows(queryset, shown)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="audit.{export}"'
        return response  # type: ignore[return-value]  # streamed
    query = request.GET.copy()
    query.pop("page", None)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    for row in rows:
        row.before, row.after = shown(row.before), shown(row.after)
    page.object_list = for_page(rows)
    ctx = {
        "filter": events,
        "page": page,
        "query": query.urlencode(),
        "actions": AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct(),
    }
    return render(request, "audit/list.html", ctx)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = EXPORT_FIELDS

    def to_representation(self, instance: AuditEvent) -> dict:
        data = super().to_representation(instance)
        shown = shown_to(self.context["request"].user)
        data["before"], data["after"] = shown(data["before"]), shown(data["after"])
        return data


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.order_by("-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [Requires(Capability.READ)]

    def list(self, request, *args, **kwargs):
        with viewer_statement_timeout():
            return super().list(request, *args, **kwargs)
