"""Pages of the runs API whose count does not cost a scan of the whole history.

Counting 100,000 runs was most of a list request (budget: p95 ≤ 100 ms, see
docs/architecture.md, "Performance budgets"). The count is exact up to EXACT_COUNT_LIMIT
rows (a bounded scan); above that it is PostgreSQL's row estimate and the body says so with
"count_is_estimate". Pages and next links never depend on the estimate: a page fetches one
row more than it shows to know whether another follows. A client that pages by offset until it
holds the total (dbt Cloud's API, count_at_most) never gets the estimate: it could be above what
exists, and such a client would ask for ever."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils.functional import cached_property
from psycopg.errors import QueryCanceled
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

EXACT_COUNT_LIMIT = 10_000


class _OpenEndedPage(Page):
    def __init__(self, object_list, number: int, paginator: Paginator, has_more: bool) -> None:
        super().__init__(object_list, number, paginator)
        self.has_more = has_more

    def has_next(self) -> bool:
        return self.has_more


def bounded_count(queryset: QuerySet) -> tuple[int, bool]:
    """How many rows, and whether that is exact: counted up to EXACT_COUNT_LIMIT rows (a
    bounded scan), PostgreSQL's row estimate above."""
    counted = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
    if counted <= EXACT_COUNT_LIMIT:
        return counted, True
    return max(EXACT_COUNT_LIMIT + 1, row_estimate(queryset)), False


def row_estimate(queryset: QuerySet) -> int:
    """PostgreSQL's estimate of the rows (its plan's), off either way when statistics are stale."""
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def count_at_most(queryset: QuerySet) -> tuple[int, bool]:
    """How many rows, never more than exist, and whether that is exact: counted up to
    EXACT_COUNT_LIMIT rows (a bounded scan), above that counted whole under
    VIEWER_STATEMENT_TIMEOUT_MS; a count the timeout stops is the EXACT_COUNT_LIMIT + 1 rows
    known to exist. For a client that pages by offset until it holds the total."""
    counted = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
    if counted <= EXACT_COUNT_LIMIT:
        return counted, True
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('statement_timeout'), set_config('statement_timeout', %s, true)",
                    [f"{settings.VIEWER_STATEMENT_TIMEOUT_MS}ms"],
                )
                previous = cursor.fetchone()[0]
            counted = queryset.order_by().count()
            with connection.cursor() as cursor:  # SET LOCAL outlives a released savepoint
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
    except OperationalError as exc:
        if not isinstance(exc.__cause__, QueryCanceled):
            raise
        return EXACT_COUNT_LIMIT + 1, False
    return counted, True


class EstimatingPaginator(Paginator):
    @cached_property
    def _counted(self) -> tuple[int, bool]:
        return bounded_count(self.object_list)

    @cached_property
    def count_is_exact(self) -> bool:
        return self._counted[1]

    @cached_property
    def count(self) -> int:
        return self._counted[0]

    def validate_number(self, number: Any) -> int:
        if self.count_is_exact:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        if self.count_is_exact:
            return super().page(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return _OpenEndedPage(rows[: self.per_page], number, self, has_more=len(rows) > self.per_page)


class RunPagination(PageNumberPagination):
    django_paginator_class = EstimatingPaginator

    def get_paginated_response(self, data) -> Response:
        response = super().get_paginated_response(data)
        response.data["count_is_estimate"] = not self.page.paginator.count_is_exact
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count"]["description"] = (
            f"exact up to {EXACT_COUNT_LIMIT:,} runs; above that PostgreSQL's estimate"
        )
        schema["properties"]["count_is_estimate"] = {"type": "boolean", "example": False}
        schema["required"].append("count_is_estimate")
        return schema
