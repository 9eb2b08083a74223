from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Capability
from accounts.permissions import Requires
from kernel.db import viewer_statement_timeout
from search import services


class SearchResultSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(services.KINDS))
    name = serializers.CharField()
    url = serializers.CharField(help_text="The portal page that shows it")
    project = serializers.CharField(help_text="Its dbt project ('' for none)")
    detail = serializers.CharField(help_text="What it is: a node's resource type, a run's state and title, …")
    snippet = serializers.CharField(help_text="The start of its description, or ''")
    match = serializers.ChoiceField(
        choices=["exact", "prefix", "substring", "tag", "column", "description"], help_text="How it matched"
    )


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = SearchResultSerializer(many=True, help_text="Best first")


def _whole_number(request: Request, name: str, default: int, most: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= most:
        raise ValidationError({name: [f"Must be a whole number from 1 to {most}."]})
    return int(value)


class SearchView(APIView):
    """Everything the caller may read whose name, tag, column or description matches ?q=:
    nodes, columns and tags of each project's current snapshot, jobs, runs (by number) and
    environments; best first (exact name, prefix, substring, tag, column, description)."""

    permission_classes = [Requires(Capability.READ)]

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description=f"At most {services.MAX_QUERY} characters"),
            OpenApiParameter(
                "kind", str, many=True, enum=list(services.KINDS), description="Only these kinds (repeatable)"
            ),
            OpenApiParameter(
                "per_kind", int, description=f"At most this many of each kind (1–{services.MAX_PER_KIND})"
            ),
            OpenApiParameter("limit", int, description=f"At most this many in all (1–{services.MAX_LIMIT})"),
        ],
        responses=SearchResponseSerializer,
    )
    def get(self, request: Request) -> Response:
        text = services.check_query(request.query_params.get("q", ""))
        kinds = request.query_params.getlist("kind") or None
        unknown = sorted(set(kinds or []) - set(services.KINDS))
        if unknown:
            raise ValidationError({"kind": [f"Unknown kind {unknown[0]!r}; one of {', '.join(services.KINDS)}."]})
        per_kind = _whole_number(request, "per_kind", services.PER_KIND, services.MAX_PER_KIND)
        limit = _whole_number(request, "limit", services.LIMIT, services.MAX_LIMIT)
        with viewer_statement_timeout():
            results = services.search(request.user, text, per_kind=per_kind, limit=limit, kinds=kinds)
        return Response({"query": text, "results": [r.as_dict() for r in results]})
