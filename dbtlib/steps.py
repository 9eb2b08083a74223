"""Django-free: a job step as a user types it (`dbt build --select +fct_users --exclude
fct_applications+`), split into the parts a run is validated and its argv built from."""

from __future__ import annotations

import shlex
from typing import Any

from dbtlib.commands import ALLOWED_COMMANDS
from dbtlib.errors import DbtInputError

MAX_STEP_LENGTH = 4000
# dbt's spellings of the flags a step may carry; every other flag is refused, so a step
# cannot point dbt at another project, profile or target path.
_LIST_FLAGS = {"--select": "select", "-s": "select", "--models": "select", "-m": "select", "--exclude": "exclude"}
_VALUE_FLAGS = {"--vars": "vars"}
_SWITCHES = {"--full-refresh": "full_refresh", "-f": "full_refresh"}


def parse_step(text: Any) -> dict[str, Any]:
    """{command, select, exclude, vars, full_refresh} of one step; DbtInputError (on
    `steps`) naming the step when it is not `dbt <allowed command> [allowed flags]`."""
    if not isinstance(text, str) or not text.strip():
        raise DbtInputError("each step is a dbt command line, e.g. 'dbt build --select +fct_users'", "steps")
    if len(text) > MAX_STEP_LENGTH:
        raise DbtInputError(f"a step is at most {MAX_STEP_LENGTH} characters", "steps")
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise DbtInputError(f"step {text!r}: {exc}", "steps") from None
    if not tokens or tokens[0] != "dbt":
        raise DbtInputError(f"step {text!r} must start with 'dbt'", "steps")
    tokens = tokens[1:]
    width = 2 if " ".join(tokens[:2]) in ALLOWED_COMMANDS else 1
    command = " ".join(tokens[:width])
    if command not in ALLOWED_COMMANDS:
        raise DbtInputError(
            f"step {text!r}: {command or 'nothing'!r} is not an allowed dbt command "
            f"(allowed: {', '.join(ALLOWED_COMMANDS)})",
            "steps",
        )
    parts: dict[str, Any] = {"command": command, "select": [], "exclude": [], "vars": None, "full_refresh": False}
    rest = tokens[width:]
    position = 0
    while position < len(rest):
        flag, position = rest[position], position + 1
        if flag in _SWITCHES:
            parts[_SWITCHES[flag]] = True
        elif flag in _VALUE_FLAGS:
            if position >= len(rest):
                raise DbtInputError(f"step {text!r}: {flag} needs a value", "steps")
            parts[_VALUE_FLAGS[flag]], position = rest[position], position + 1
        elif flag in _LIST_FLAGS:
            values = []
            while position < len(rest) and not rest[position].startswith("-"):
                values.append(rest[position])
                position += 1
            if not values:
                raise DbtInputError(f"step {text!r}: {flag} needs a selector", "steps")
            parts[_LIST_FLAGS[flag]] += values
        else:
            known = ", ".join([*_LIST_FLAGS, *_VALUE_FLAGS, *_SWITCHES])
            raise DbtInputError(f"step {text!r}: {flag!r} is not a flag a step may use ({known})", "steps")
    parts["select"], parts["exclude"] = " ".join(parts["select"]), " ".join(parts["exclude"])
    return parts


def step_text(command: str, select: str = "", exclude: str = "", full_refresh: bool = False) -> str:
    """The step a user would type for these parts (vars aside: they are kept as parsed)."""
    words = ["dbt", command]
    if select:
        words += ["--select", select]
    if exclude:
        words += ["--exclude", exclude]
    if full_refresh:
        words.append("--full-refresh")
    return " ".join(words)
