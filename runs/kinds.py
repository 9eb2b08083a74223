"""Run kinds other apps register, so runs never imports them (docs/architecture.md, "Layers").

A handler gets a RunContext and either returns (run `success`), raises RunFailed(reason)
(run `failed`), or raises anything else (run `error`, the message as reason). When the run
is cancelled or times out, ctx.log/ctx.dbt raise RunInterrupted; let it propagate.
Warehouse connections a handler opens carry `ctx.application_name`: on cancel or timeout
the worker terminates them, and whatever error that raises in the handler ends the run
`cancelled` or `timed_out`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs.models import Run


class RunFailed(Exception):  # noqa: N818 - contract name
    """A handler's way to end its run `failed` with a reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RunInterrupted(Exception):  # noqa: N818 - contract name
    """The run was cancelled or timed out; the worker records which."""


@dataclass(frozen=True)
class RunKind:
    name: str
    handler: Callable[[RunContext], None]
    label: str
    # How a run of this kind is re-run, with the kind's own checks (e.g. one refresh of an
    # entity at a time); None: a copy through trigger_run.
    rerun: Callable[..., Run] | None = None


_KINDS: dict[str, RunKind] = {}


def register_kind(
    name: str, handler: Callable[[RunContext], None], label: str, *, rerun: Callable[..., Run] | None = None
) -> None:
    if name == "dbt":
        raise ValueError("'dbt' is the built-in kind")
    _KINDS[name] = RunKind(name, handler, label, rerun)


def get_kind(name: str) -> RunKind | None:
    return _KINDS.get(name)


def registered_kinds() -> list[RunKind]:
    return sorted(_KINDS.values(), key=lambda k: k.name)


class RunContext:
    """What a kind handler may do inside its run. Built by the worker."""

    def __init__(
        self,
        run: Run,
        *,
        log: Callable[[str], None],
        dbt: Callable[..., int],
        interrupted: Callable[[], bool],
        application_name: str = "",
        waiting: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.run = run
        self.application_name = application_name
        self._waiting = waiting
        self._log = log
        self._dbt = dbt
        self._interrupted = interrupted

    @property
    def cancel_requested(self) -> bool:
        """True once the run was cancelled or ran out of time."""
        return self._interrupted()

    def raise_if_interrupted(self) -> None:
        """Raise RunInterrupted once the run was cancelled or ran out of time."""
        if self._interrupted():
            raise RunInterrupted()

    def waiting(self, reason: str) -> None:
        """Show what the run waits for as its reason, at once (and the log so far); call
        with "" once it goes on."""
        self._waiting(reason)

    def log(self, line: str) -> None:
        self.raise_if_interrupted()
        self._log(line)

    def dbt(
        self,
        command: str,
        select: str = "",
        exclude: str = "",
        vars: dict | None = None,  # noqa: A002 - dbt's own name
        full_refresh: bool = False,
    ) -> int:
        """Run dbt inside this run (isolated, streamed, node results, cancel and timeout);
        returns dbt's exit code (0 ok, 1 node failures, 2 dbt could not run)."""
        self.raise_if_interrupted()
        return self._dbt(command, select=select, exclude=exclude, vars=vars or {}, full_refresh=full_refresh)
