"""Django-free: which dbt commands the portal runs, input checks, and the argv (a list,
never a shell string) built from validated parts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

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
)
# Commands that write to the warehouse: serialized per project and target.
WRITE_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot"})
SELECTING_COMMANDS = frozenset(set(ALLOWED_COMMANDS) - {"parse"})
FULL_REFRESH_COMMANDS = frozenset({"build", "run", "seed"})

MAX_SELECTOR_LENGTH = 2000
# Characters a selector may hold: names, globs, methods, graph operators, paths, unions/intersections.
_SELECTOR_CHARS = re.compile(r"^[A-Za-z0-9_.:+*@/,=\-\[\]? ]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHELL = re.compile(r"[;&|$`<>(){}!'\"\\~#%^]")
_TARGET = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class InvalidDbtRequest(ValueError):  # noqa: N818 - a domain name
    """A rejected input, naming the field and the problem in words."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_command(command: str) -> str:
    normalized = " ".join(command.split())
    if normalized not in ALLOWED_COMMANDS:
        raise InvalidDbtRequest(
            "command", f"{command!r} is not an allowed dbt command (allowed: {', '.join(ALLOWED_COMMANDS)})"
        )
    return normalized


def check_selector(field: str, value: str) -> str:
    """Syntax only; whether the selector matches nodes is checked against the manifest."""
    value = value.strip()
    if len(value) > MAX_SELECTOR_LENGTH:
        raise InvalidDbtRequest(field, f"selector is longer than {MAX_SELECTOR_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidDbtRequest(field, "selector contains a control character")
    shell = _SHELL.search(value)
    if shell:
        raise InvalidDbtRequest(field, f"selector contains the character {shell.group()!r}, which is not allowed")
    if not _SELECTOR_CHARS.match(value):
        raise InvalidDbtRequest(field, "selector contains characters that are not allowed")
    for token in value.split():
        if token.startswith("-"):
            raise InvalidDbtRequest(field, f"selector term {token!r} starts with '-' (it would be read as an option)")
    return " ".join(value.split())


def check_vars(value: Any, declared: set[str]) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidDbtRequest("vars", f"vars are not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidDbtRequest("vars", "vars must be a JSON object of name → value")
    unknown = sorted(set(value) - declared)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise InvalidDbtRequest("vars", f"the project declares no var {unknown[0]!r} (declared: {known})")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidDbtRequest("vars", "var values must be JSON values") from None
    return value


def check_target(value: str) -> str:
    if value and not _TARGET.match(value):
        raise InvalidDbtRequest("target", "target must be a profile target name")
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
) -> list[str]:
    """dbt's argv without the program name, from already validated parts."""
    argv = command.split()
    argv += [
        "--log-format",
        "json",
        "--no-use-colors",
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(profiles_dir),
        "--target-path",
        str(target_path),
        "--log-path",
        str(log_path),
    ]
    if select and command in SELECTING_COMMANDS:
        argv += ["--select", *select.split()]
    if exclude and command in SELECTING_COMMANDS:
        argv += ["--exclude", *exclude.split()]
    if vars:
        argv += ["--vars", json.dumps(vars, sort_keys=True)]
    if full_refresh and command in FULL_REFRESH_COMMANDS:
        argv.append("--full-refresh")
    if target:
        argv += ["--target", target]
    if threads:
        argv += ["--threads", str(threads)]
    return argv
