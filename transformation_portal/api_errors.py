"""The API's one error shape: `{"detail": <one sentence>, "field": <name or null>, "code": <stable
code>}`, plus `errors` (every message) for DRF's validation errors and any extra data a
RequestError carries (e.g. `parity_report`)."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from transformation_portal.errors import RequestError


def _first_message(detail: Any) -> tuple[str | None, Any]:
    """(field, message) of the first error in a DRF error structure; the message is DRF's
    ErrorDetail, which carries its code."""
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        inner_field, message = _first_message(value)
        if field in ("non_field_errors", "detail"):
            return inner_field, message
        return (f"{field}.{inner_field}" if inner_field else field), message
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return None, detail


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """RequestError with the status its code implies; DRF's own errors (and Django's Http404
    and PermissionDenied, which DRF converts) with DRF's code."""
    if isinstance(exc, RequestError):
        return Response(exc.as_dict(), status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    field, message = _first_message(response.data)
    body = {"detail": str(message), "field": field, "code": getattr(message, "code", None) or "error"}
    if not (isinstance(response.data, dict) and set(response.data) == {"detail"}):
        body["errors"] = response.data
    response.data = body
    return response
