"""Django-free: which dbt commands the portal runs, input checks, and the argv (a list,
never a shell string) built from validated parts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbtlib.errors import DbtInputError

ALLOWED_COMMANDS: tuple[str, ...] = (
    "build",
    "run",
    "test",
    "seed",
    "snapshot",
    "compile",
    "parse",
    "ls",
    "docs generate",
    "source freshness",
    "deps",
)
# Commands that execute nodes: only their results are a node's history (a compile, docs
# generate, ls or parse reports every node it compiled as `success`; source freshness has a
# history of its own).
EXECUTING_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot"})
# Commands that write to the warehouse: serialized per project and target.
WRITE_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot"})
SELECTING_COMMANDS = frozenset(set(ALLOWED_COMMANDS) - {"parse", "deps"})
FULL_REFRESH_COMMANDS = frozenset({"build", "run", "seed"})
# The commands the portal hands a comparison state (--state, --defer, --favor-state): dbt 1.11
# takes them on every command, they mean something on those that select.
STATE_COMMANDS = SELECTING_COMMANDS
# dbt 1.11's deps writes no target and runs no threads: it refuses --target-path and --threads.
TARGETLESS_COMMANDS = frozenset({"deps"})
# The commands dbt 1.11 takes these flags on (`dbt <command> --help`); --fail-fast and
# --warn-error are global flags, taken by every command.
RESOURCE_TYPE_COMMANDS = frozenset({"build", "test", "ls"})
EMPTY_COMMANDS = frozenset({"build", "run", "snapshot", "compile"})
# --resource-type's values in dbt 1.11 ("default": the command's own, "all": every type);
# --exclude-resource-type takes the types alone.
RESOURCE_TYPES = (
    "model", "seed", "snapshot", "test", "unit_test", "source", "analysis", "exposure", "metric",
    "semantic_model", "saved_query", "function",
)  # fmt: skip
RESOURCE_TYPE_CHOICES = (*RESOURCE_TYPES, "default", "all")

# dbt renders a var's string values as Jinja (with run_query, env_var, log …): an operator's
# var must never be code.
JINJA_MARKS = ("{{", "{%", "{#")
_TARGET = re.compile(r"[A-Za-z0-9_-]{1,100}")


def check_command(command: str) -> str:
    normalized = " ".join(command.split())
    if normalized not in ALLOWED_COMMANDS:
        raise DbtInputError(
            f"{command!r} is not an allowed dbt command (allowed: {', '.join(ALLOWED_COMMANDS)})", "command"
        )
    return normalized


def check_vars(value: Any, declared: set[str]) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DbtInputError(f"vars are not valid JSON ({exc.msg})", "vars") from None
    if not isinstance(value, dict):
        raise DbtInputError("vars must be a JSON object of name → value", "vars")
    unknown = sorted(set(value) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise DbtInputError(f"the project declares no var {unknown[0]!r} (declared: {known})", "vars")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise DbtInputError("var values must be JSON values", "vars") from None
    if any(mark in text for text in _texts(value) for mark in JINJA_MARKS):
        raise DbtInputError("var values may not hold Jinja ('{{', '{%' or '{#'): dbt would run it", "vars")
    return value


def _texts(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included: dbt renders each as Jinja when var() reads it."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def check_target(value: str) -> str:
    if value and not _TARGET.fullmatch(value):
        raise DbtInputError("target must be a profile target name", "target")
    return value


def build_argv(
    command: str,
    *,
    project_dir: Path,
    profiles_dir: Path,
    target_path: Path,
    log_path: Path,
    select: str = "",
    exclude: str = "",
    vars: dict[str, Any] | None = None,  # noqa: A002 - dbt's own name
    full_refresh: bool = False,
    target: str = "",
    threads: int | None = None,
    log_format: str = "json",
    selector: str = "",
    indirect_selection: str = "",
    resource_types: tuple[str, ...] | list[str] = (),
    exclude_resource_types: tuple[str, ...] | list[str] = (),
    fail_fast: bool = False,
    warn_error: bool = False,
    empty: bool = False,
    state: Path | None = None,
    defer: bool = False,
    favor_state: bool = False,
) -> list[str]:
    """dbt's argv without the program name, from already validated parts: every dbt
    invocation of the portal (runs, the trigger check's parse) is built here. `state` (the
    directory of the manifest to compare with: `state:` selection, and --defer's), `defer`
    and `favor_state` are the portal's own (a slim CI run's), never a user's."""
    if (defer or favor_state) and state is None:
        raise DbtInputError("--defer and --favor-state need a state directory to defer to", "state")
    argv = command.split()
    argv += ["--log-format", log_format, "--no-use-colors", "--project-dir", str(project_dir)]
    argv += ["--profiles-dir", str(profiles_dir), "--log-path", str(log_path)]
    if command not in TARGETLESS_COMMANDS:
        argv += ["--target-path", str(target_path)]
    if select and command in SELECTING_COMMANDS:
        argv += ["--select", *select.split()]
    if exclude and command in SELECTING_COMMANDS:
        argv += ["--exclude", *exclude.split()]
    if selector and command in SELECTING_COMMANDS:
        argv += ["--selector", selector]
    if indirect_selection and command in SELECTING_COMMANDS:
        argv += ["--indirect-selection", indirect_selection]
    if command in RESOURCE_TYPE_COMMANDS:
        for value in resource_types:
            argv += ["--resource-type", value]
        for value in exclude_resource_types:
            argv += ["--exclude-resource-type", value]
    if fail_fast:
        argv.append("--fail-fast")
    if warn_error:
        argv.append("--warn-error")
    if empty and command in EMPTY_COMMANDS:
        argv.append("--empty")
    if state is not None and command in STATE_COMMANDS:
        argv += ["--state", str(state)]
        argv += ["--defer"] if defer else []
        argv += ["--favor-state"] if favor_state else []
    if vars:
        argv += ["--vars", json.dumps(vars, sort_keys=True)]
    if full_refresh and command in FULL_REFRESH_COMMANDS:
        argv.append("--full-refresh")
    if target:
        argv += ["--target", target]
    if threads and command not in TARGETLESS_COMMANDS:
        argv += ["--threads", str(threads)]
    return argv
