from __future__ import annotations

from rest_framework.views import exception_handler as drf_exception_handler


def _first_message(detail) -> tuple[str | None, str]:
    """(field, message) of the first error in a DRF error structure."""
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        inner_field, message = _first_message(value)
        if field in ("non_field_errors", "detail"):
            return inner_field, message
        return (f"{field}.{inner_field}" if inner_field else field), message
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return None, str(detail)


def exception_handler(exc, context):
    """Errors as {"detail": <one sentence>, "field": <name or null>, "errors": <all>}."""
    response = drf_exception_handler(exc, context)
    if response is not None and not (isinstance(response.data, dict) and set(response.data) == {"detail"}):
        field, message = _first_message(response.data)
        response.data = {"detail": message, "field": field, "errors": response.data}
    elif response is not None:
        response.data.setdefault("field", None)
    return response
