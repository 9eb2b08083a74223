"""Django-free: a job step as a user types it (`dbt build --select +fct_users --exclude
fct_applications+`), split into the parts a run is validated and its argv built from."""

from __future__ import annotations

import re
import shlex
from typing import Any

from dbtlib.commands import (
    ALLOWED_COMMANDS,
    EMPTY_COMMANDS,
    RESOURCE_TYPE_CHOICES,
    RESOURCE_TYPE_COMMANDS,
    RESOURCE_TYPES,
    SELECTING_COMMANDS,
)
from dbtlib.errors import DbtInputError
from dbtlib.manifest import Manifest
from dbtlib.selectors import INDIRECT_SELECTIONS, select_in_manifest

MAX_STEP_LENGTH = 4000
# dbt's spellings of the flags a step may carry; every other flag is refused, so a step
# cannot point dbt at another project, profile or target path.
_LIST_FLAGS = {"--select": "select", "-s": "select", "--models": "select", "-m": "select", "--exclude": "exclude"}
_TYPE_FLAGS = {
    "--resource-type": "resource_types", "--resource-types": "resource_types",
    "--exclude-resource-type": "exclude_resource_types", "--exclude-resource-types": "exclude_resource_types",
}  # fmt: skip
_VALUE_FLAGS = {"--vars": "vars", "--selector": "selector", "--indirect-selection": "indirect_selection"}
_SWITCHES = {
    "--full-refresh": "full_refresh", "-f": "full_refresh", "--fail-fast": "fail_fast", "-x": "fail_fast",
    "--warn-error": "warn_error", "--empty": "empty",
}  # fmt: skip
# Flags that would have dbt read or write somewhere the run did not choose: the run sets
# the project, profile, target and paths itself.
ELSEWHERE_FLAGS = (
    "--project-dir", "--profiles-dir", "--profile", "--target", "-t", "--target-path", "--log-path",
    "--packages-install-path", "--output-path", "-o", "--log-level-file", "--log-file-max-bytes",
)  # fmt: skip
# Flags that compare with or defer to another manifest: the portal sets them itself on a slim
# CI run (production's manifest), never from a step.
STATE_FLAGS = ("--state", "--defer", "--no-defer", "--defer-state", "--favor-state", "--no-favor-state")
# Which commands take a flag (dbt 1.11); a flag missing here is taken by every allowed command.
_COMMANDS_OF = {
    "select": SELECTING_COMMANDS,
    "exclude": SELECTING_COMMANDS,
    "selector": SELECTING_COMMANDS,
    "indirect_selection": SELECTING_COMMANDS,
    "resource_types": RESOURCE_TYPE_COMMANDS,
    "exclude_resource_types": RESOURCE_TYPE_COMMANDS,
    "empty": EMPTY_COMMANDS,
}
_TYPE_VALUES = {"resource_types": RESOURCE_TYPE_CHOICES, "exclude_resource_types": RESOURCE_TYPES}
_SELECTOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
# The parts beyond the command's own: kept on the step (RunStep.options) when set, and handed
# to the argv builder as they are.
OPTION_NAMES = (
    "selector", "indirect_selection", "resource_types", "exclude_resource_types", "fail_fast", "warn_error", "empty"
)  # fmt: skip

# Those of them that change what a step selects.
SELECTION_OPTIONS = ("selector", "indirect_selection", "resource_types", "exclude_resource_types")


def _known_flags() -> str:
    return ", ".join([*_LIST_FLAGS, *_TYPE_FLAGS, *_VALUE_FLAGS, *_SWITCHES])


def parse_step(text: Any) -> dict[str, Any]:  # noqa: C901, PLR0912 - one branch per kind of flag
    """{command, select, exclude, vars, full_refresh, options} of one step (`options`: the
    OPTION_NAMES given, e.g. {"selector": "nightly", "fail_fast": True}); DbtInputError (on
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

    def refuse(why: str) -> DbtInputError:
        return DbtInputError(f"step {text!r}: {why}", "steps")

    parts: dict[str, Any] = {"command": command, "select": [], "exclude": [], "vars": None, "full_refresh": False}
    options: dict[str, Any] = {}
    rest = tokens[width:]
    position = 0
    while position < len(rest):
        word, position = rest[position], position + 1
        flag, equals, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        if not word.startswith("--") and word[:2] in ELSEWHERE_FLAGS:
            flag = word[:2]  # `-tprod`: dbt reads a short flag's value attached to it
        if flag in STATE_FLAGS:
            raise refuse(
                f"{flag!r} is not a flag a step may use: the portal sets the state to compare with and "
                "defer to itself (a pull request's CI run compares with production's manifest)"
            )
        if flag in ELSEWHERE_FLAGS:
            raise refuse(
                f"{flag!r} is not a flag a step may use: it would point dbt at another project, profile, "
                "target or path (a run sets these from its project and environment)"
            )
        name = {**_LIST_FLAGS, **_TYPE_FLAGS, **_VALUE_FLAGS, **_SWITCHES}.get(flag)
        if name is None:
            raise refuse(f"{flag!r} is not a flag a step may use ({_known_flags()})")
        if command not in _COMMANDS_OF.get(name, ALLOWED_COMMANDS):
            raise refuse(f"dbt {command} does not take {flag}")
        if flag in _SWITCHES:
            if equals:
                raise refuse(f"{flag} takes no value")
            if name == "full_refresh":
                parts[name] = True
            else:
                options[name] = True
            continue
        values = [attached] if equals else []
        if flag in _VALUE_FLAGS:
            if not equals:
                if position >= len(rest):
                    raise refuse(f"{flag} needs a value")
                values, position = [rest[position]], position + 1
            value = values[0]
            if name == "vars":
                parts["vars"] = value
                continue
            if name in options:
                raise refuse(f"{flag} is given twice")
            if name == "selector" and not _SELECTOR_NAME.fullmatch(value):
                raise refuse(f"{value!r} is not a selector name of selectors.yml")
            if name == "indirect_selection":
                value = value.lower()
                if value not in INDIRECT_SELECTIONS:
                    raise refuse(f"{flag} is one of {', '.join(INDIRECT_SELECTIONS)}, not {values[0]!r}")
            options[name] = value
            continue
        while not equals and position < len(rest) and not rest[position].startswith("-"):
            values.append(rest[position])
            position += 1
        if not values or not all(values):
            raise refuse(f"{flag} needs {'a selector' if flag in _LIST_FLAGS else 'a resource type'}")
        if flag in _LIST_FLAGS:
            parts[name] += values
            continue
        for value in values:
            if value.lower() not in _TYPE_VALUES[name]:
                raise refuse(f"{flag} takes {', '.join(_TYPE_VALUES[name])}, not {value!r}")
            if value.lower() not in options.setdefault(name, []):
                options[name].append(value.lower())
    if "selector" in options and (parts["select"] or parts["exclude"]):
        given = "--select" if parts["select"] else "--exclude"
        raise refuse(f"--selector and {given} cannot be used together (dbt would ignore {given}): use one")
    parts["select"], parts["exclude"] = " ".join(parts["select"]), " ".join(parts["exclude"])
    return {**parts, "options": options}


def selected_by_step(
    manifest: Manifest,
    select: str,
    exclude: str,
    options: dict[str, Any] | None = None,
    *,
    state: Manifest | None = None,
) -> list[str]:
    """The unique_ids `dbt ls` lists for a step's selection (its --select, --exclude and the
    options that select: --selector, --indirect-selection, the resource types). `state` is
    the manifest the run compares with (a CI run's: production's); without one a `state:`
    criterion is refused (DbtSelectorError), as dbt refuses it without --state."""
    options = options or {}
    return select_in_manifest(
        manifest,
        select,
        exclude,
        selector=options.get("selector", ""),
        indirect_selection=options.get("indirect_selection") or "eager",
        resource_types=tuple(options.get("resource_types", ())),
        exclude_resource_types=tuple(options.get("exclude_resource_types", ())),
        state=state,
    )


def step_text(
    command: str,
    select: str = "",
    exclude: str = "",
    full_refresh: bool = False,
    options: dict[str, Any] | None = None,
) -> str:
    """The step a user would type for these parts (vars aside: they are kept as parsed)."""
    options = options or {}
    words = ["dbt", command]
    if select:
        words += ["--select", select]
    if exclude:
        words += ["--exclude", exclude]
    if options.get("selector"):
        words += ["--selector", options["selector"]]
    if options.get("indirect_selection"):
        words += ["--indirect-selection", options["indirect_selection"]]
    for name, flag in (("resource_types", "--resource-type"), ("exclude_resource_types", "--exclude-resource-type")):
        if options.get(name):
            words += [flag, *options[name]]
    if full_refresh:
        words.append("--full-refresh")
    words += [
        flag
        for name, flag in (("fail_fast", "--fail-fast"), ("warn_error", "--warn-error"), ("empty", "--empty"))
        if options.get(name)
    ]
    return " ".join(words)
