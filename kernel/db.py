"""Bounds on the heavy read queries any viewer can start: lineage search and
the audit list run under a statement_timeout of VIEWER_STATEMENT_TIMEOUT_MS; a query it
cancels is a RequestError (503 query_timeout) rather than a worker held for minutes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from psycopg.errors import QueryCanceled

from kernel.errors import ErrorCode, RequestError


@contextmanager
def viewer_statement_timeout() -> Iterator[None]:
    """The queries inside run in one transaction with statement_timeout set (SET LOCAL)."""
    limit = settings.VIEWER_STATEMENT_TIMEOUT_MS
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{limit}ms"])
        try:
            yield
        except OperationalError as exc:
            if not isinstance(exc.__cause__, QueryCanceled):
                raise
            raise RequestError(
                f"the query took longer than {limit} ms (VIEWER_STATEMENT_TIMEOUT_MS) and was stopped; "
                "narrow the search or the filters and try again",
                code=ErrorCode.QUERY_TIMEOUT,
            ) from None


def bounded_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page view whose queries run under viewer_statement_timeout; a timeout is a 503 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            with viewer_statement_timeout():
                return view(request, *args, **kwargs)
        except RequestError as exc:
            if exc.code != ErrorCode.QUERY_TIMEOUT:
                raise
            return render(request, "503.html", {"message": exc.message}, status=exc.status)

    return wrapper
