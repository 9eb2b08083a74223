"""Django-free: what the dbt library raises. The portal's services turn DbtInputError into its
request error at their boundary (kernel.errors.dbt_input_refused); the others are the library's
own reports of what dbt, a manifest or an artifact did wrong."""

from __future__ import annotations

from pathlib import Path


class DbtInputError(Exception):
    """Input the library refuses before dbt sees it (a command, vars, a target, a job step):
    a sentence for a person and the request field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class DbtSelectorError(DbtInputError):
    """A selector that is not dbt selector syntax, or uses a method the library does not answer."""


class DbtError(Exception):
    """dbt could not do what was asked: carries the command, its exit code and its log."""

    def __init__(self, message: str, *, command: str, exit_code: int | None, log_path: Path | None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command
        self.exit_code = exit_code
        self.log_path = log_path


class ManifestError(Exception):
    """A manifest (or catalog) the portal refuses; the message is meant for the user."""


class ArtifactError(Exception):
    """An artifact dbt should have written is missing or unreadable."""
