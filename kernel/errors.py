"""The one request-error type, raised by services when a request is refused. Pages show it as
a form error, the API as `{"detail", "field", "code"}` with the status its code implies.
Nothing was changed when it is raised. The dbt library's own refusals become one at the
services' boundary (`dbt_input_refused`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from dbtlib.errors import DbtInputError, DbtSelectorError


class ErrorCode(StrEnum):
    """Stable, machine-readable reasons; clients may branch on them."""

    INVALID = "invalid"  # a field's value is wrong (the message says how)
    NOT_FOUND = "not_found"
    INVALID_SELECTOR = "invalid_selector"  # not dbt selector syntax, or an unknown method
    SELECTS_NOTHING = "selects_nothing"  # a valid selector that matches no node
    PERMISSION_DENIED = "permission_denied"
    SELF_APPROVAL = "self_approval"  # four eyes: nobody decides their own request
    NOT_REQUESTER = "not_requester"  # only the requester withdraws a request
    PARITY_GATE = "parity_gate"  # canary/dbt need a parity report at the threshold
    PARITY_STALE = "parity_stale"  # the report's inputs (raw data, dbt project, rule set) changed since
    STALE_REQUEST = "stale_request"  # the entity left the mode the request was made from
    ALREADY_DECIDED = "already_decided"  # approved, rejected or withdrawn already
    ALREADY_IN_MODE = "already_in_mode"
    ALREADY_FINISHED = "already_finished"  # a run that has ended cannot be cancelled
    ALREADY_ACTIVE = "already_active"  # one refresh of an entity at a time
    CONFLICT = "conflict"  # the state refuses the action for another reason
    DISK_FULL = "disk_full"  # RUNS_DIR's filesystem is below RUNS_MIN_FREE_MB: no new run
    TOO_LARGE = "too_large"  # an upload above its size cap
    QUERY_TIMEOUT = "query_timeout"  # a viewer's heavy read query ran past VIEWER_STATEMENT_TIMEOUT_MS


STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.SELF_APPROVAL: 403,
    ErrorCode.NOT_REQUESTER: 403,
    ErrorCode.PARITY_GATE: 409,
    ErrorCode.PARITY_STALE: 409,
    ErrorCode.STALE_REQUEST: 409,
    ErrorCode.ALREADY_DECIDED: 409,
    ErrorCode.ALREADY_IN_MODE: 409,
    ErrorCode.ALREADY_FINISHED: 409,
    ErrorCode.ALREADY_ACTIVE: 409,
    ErrorCode.CONFLICT: 409,
    ErrorCode.DISK_FULL: 507,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.QUERY_TIMEOUT: 503,
}


class RequestError(Exception):
    """A refused request: the field at fault (or None), a sentence for a person, a stable
    code, and any extra data the API adds to its answer (e.g. the parity report)."""

    def __init__(
        self, message: str, *, field: str | None = None, code: ErrorCode = ErrorCode.INVALID, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = ErrorCode(code)
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def as_dict(self) -> dict[str, Any]:
        return {"detail": self.message, "field": self.field, "code": str(self.code), **self.extra}


@contextmanager
def dbt_input_refused() -> Iterator[None]:
    """The boundary of a service that hands request input to the dbt library (a command, vars,
    a target, a selector, a job step): the library's DbtInputError becomes the RequestError a
    page or the API shows, with its sentence and field (a selector's with INVALID_SELECTOR).
    A context manager, or a decorator of the whole service."""
    try:
        yield
    except DbtInputError as exc:
        code = ErrorCode.INVALID_SELECTOR if isinstance(exc, DbtSelectorError) else ErrorCode.INVALID
        raise RequestError(exc.message, field=exc.field, code=code) from exc


def form_error(form: Any, error: RequestError) -> None:
    """Show a refused request on a page's form: on its field when the form has one, else
    above the form. (Duck-typed on Django's `Form.fields` and `Form.add_error`.)"""
    form.add_error(error.field if error.field in form.fields else None, error.message)
