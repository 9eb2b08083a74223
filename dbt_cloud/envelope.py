"""dbt Cloud's response shape, for this app's views only: every answer (refusals included)
is `{"status": {"code", "is_success", "user_message", "developer_message"}, "data": …}`, a
list adds `"extra": {"filters", "pagination"}`. The v1 API keeps its own error shape
(transformation_portal.api_errors)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from kernel.errors import ErrorCode, RequestError
from runs.pagination import count_at_most

MAX_LIMIT = 100  # dbt Cloud's largest page
PAGING = ("limit", "offset", "order_by")


def envelope(data: Any, *, code: int = 200, extra: dict | None = None, message: str = "Success!") -> Response:
    body = {
        "status": {"code": code, "is_success": code < 400, "user_message": message, "developer_message": ""},
        "data": data,
    }
    if extra is not None:
        body["extra"] = extra
    return Response(body, status=code)


def refusal(message: str, *, code: int, field: str | None = None, reason: str = ErrorCode.INVALID) -> Response:
    """A refusal in the envelope; `data` names the field at fault and the portal's stable code."""
    response = envelope({"field": field, "code": str(reason)}, code=code, message=message)
    response.data["status"]["developer_message"] = f"field: {field}" if field else str(reason)
    return response


def _first(detail: Any) -> tuple[str | None, str]:
    """(field, message) of the first error in a DRF error structure."""
    if isinstance(detail, dict) and detail:
        field, value = next(iter(detail.items()))
        return (None if field in ("detail", "non_field_errors") else field), _first(value)[1]
    if isinstance(detail, list) and detail:
        return _first(detail[0])
    return None, str(detail)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """RequestError with the status its code implies; DRF's errors (401, 403, 404, bad JSON…)
    with DRF's status, all in the envelope."""
    if isinstance(exc, RequestError):
        return refusal(exc.message, code=exc.status, field=exc.field, reason=exc.code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    field, message = _first(response.data)
    reason = getattr(getattr(exc, "detail", None), "code", None) or getattr(exc, "default_code", "error")
    refused = refusal(message, code=response.status_code, field=field, reason=reason)
    for header in ("WWW-Authenticate", "Retry-After"):
        if header in response:
            refused[header] = response[header]
    return refused


def _whole(params: Any, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"{name} must be a whole number", field=name) from None
    if not low <= value <= high:
        raise RequestError(f"{name} must be from {low} to {high}", field=name)
    return value


def page(queryset: Any, params: Any, shape: Any, *, bounded: bool = False) -> Response:
    """One page of `queryset` by `limit` (default PORTAL_API_PAGE_SIZE) and `offset`, each row
    through `shape`, with the counts the dbt Cloud provider pages by. It asks for offsets until
    it holds total_count rows, so total_count is never above what exists: a short page ends
    the rows (offset + its rows); `bounded` (a history that grows without end, the runs) counts
    with runs.pagination's count_at_most, exact unless its statement timeout stopped it, as
    `total_count_is_estimate` says."""
    limit = _whole(params, "limit", min(settings.PORTAL_API_PAGE_SIZE, MAX_LIMIT), 1, MAX_LIMIT)
    offset = _whole(params, "offset", 0, 0, 2**31)
    rows = list(queryset[offset : offset + limit])
    exact = True
    if len(rows) < limit and (rows or not offset):
        total = offset + len(rows)
    elif bounded:
        total, exact = count_at_most(queryset)
    else:
        total = len(queryset) if isinstance(queryset, list) else queryset.count()
    pagination = {"count": len(rows), "total_count": total}
    if bounded:
        pagination["total_count_is_estimate"] = not exact
    extra = {
        "filters": {**{k: v for k, v in params.items() if k not in PAGING}, "limit": limit, "offset": offset},
        "order_by": params.get("order_by"),
        "pagination": pagination,
    }
    return envelope([shape(row) for row in rows], extra=extra)


def not_found(what: str) -> exceptions.NotFound:
    return exceptions.NotFound(f"No such {what}.")
