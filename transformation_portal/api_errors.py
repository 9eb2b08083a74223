"""The API's one error shape: `{"detail": <one sentence>, "field": <name or null>, "code": <stable
code>}`, plus `errors` (every message) for DRF's validation errors and any extra data a
RequestError carries (e.g. `parity_report`). Also the JSON 404 of paths no endpoint matches,
and the schema hook that declares this shape for every status an operation can refuse with."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse, HttpResponsePermanentRedirect
from django.urls import resolve
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from kernel.errors import RequestError


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


class ApiNotFoundView(APIView):
    """Any path under /api/v1/ that no endpoint matches: the API's JSON 404, not a page
    (a GET of an endpoint without its trailing slash is redirected, as APPEND_SLASH would)."""

    permission_classes = [AllowAny]  # it serves nothing but the refusal
    schema = None  # not an endpoint of the schema

    def refuse(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        path = request.path_info
        if request.method == "GET" and not path.endswith("/") and resolve(f"{path}/").url_name != "api-not-found":
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
        raise NotFound("No such API endpoint.")

    get = post = put = patch = delete = options = refuse  # type: ignore[assignment]


# --- the error shape in the OpenAPI schema ----------------------------------------------------
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every refusal: one sentence, the field at fault (or null) and a stable code.",
    "properties": {
        "detail": {"type": "string"},
        "field": {"type": "string", "nullable": True},
        "code": {"type": "string", "description": "e.g. invalid, not_found, permission_denied, already_active"},
        "errors": {"description": "Every message of a validation error, as DRF reports them"},
    },
    "required": ["detail", "field", "code"],
    "additionalProperties": True,  # a RequestError's extra data, e.g. `parity_report`
}
ERROR_DESCRIPTIONS = {
    "400": "Bad input (nothing was changed)",
    "401": "No credentials, or an invalid, expired or revoked token",
    "403": "Your role may not do this",
    "404": "No such object, or no such page",
    "409": "The object's state refuses the action",
    "413": "The upload is larger than its cap",
    "414": "The request line (path and query) is longer than the web server takes (gunicorn: 4094 bytes)",
    "429": "Too many requests: try again after Retry-After seconds",
    "503": "The query ran past VIEWER_STATEMENT_TIMEOUT_MS: narrow it",
    "507": "Too little free space for a new run's files",
}
# gunicorn's own refusal, before Django: an HTML page.
SERVER_PAGE = {"text/html": {"schema": {"type": "string"}}}
WRITE_METHODS = frozenset({"post", "put", "patch", "delete"})
# POSTs that only read (a selector in a JSON body): no state to refuse them.
READS_BY_POST = frozenset({"/api/v1/projects/{project}/select/"})
# The heavy reads any viewer can start, bounded by kernel.db.
VIEWER_TIMEOUT_PATHS = frozenset(
    {
        "/api/v1/audit/",
        "/api/v1/projects/{project}/nodes/",
        "/api/v1/projects/{project}/nodes/{unique_id}/columns/",
        "/api/v1/search/",
    }
)


def _error_statuses(path: str, method: str, operation: dict) -> list[str]:
    """The refusals an operation can answer with: every one needs a login and a role and may
    be throttled; parameters or a body can be bad; a path names an object (and a page number
    a page) that may not exist; a write can meet a state that refuses it; a manifest upload
    can be too large; too long a query string is refused by the web server (HTML, not JSON);
    what starts a run (answers 202) can meet a full disk; a heavy read can
    run out of time."""
    params = operation.get("parameters", [])
    statuses = ["401", "403", "429"]
    if "requestBody" in operation or any(p["in"] == "query" for p in params):
        statuses.append("400")
    if any(p["in"] == "path" or p["name"] == "page" for p in params):
        statuses.append("404")
    if method in WRITE_METHODS and path not in READS_BY_POST:
        statuses.append("409")
    if path.endswith("/manifests/") and method == "post":
        statuses.append("413")
    if any(p["in"] == "query" for p in params):
        statuses.append("414")
    if "202" in operation.get("responses", {}) and not path.endswith("/cancel/"):
        statuses.append("507")
    if method == "get" and path in VIEWER_TIMEOUT_PATHS:
        statuses.append("503")
    return statuses


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """drf-spectacular postprocessing hook: the `Error` component, declared (in one place)
    for every status each operation can refuse with."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_statuses(path, method, operation):
                content = SERVER_PAGE if code == "414" else body
                responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code], "content": content})
            operation["responses"] = dict(sorted(responses.items()))
    return result
