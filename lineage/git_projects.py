"""Registering a git project (an admin's, audited): its repository is reached once, with this
host's value of the credential, so a wrong URL, credential, branch or subdirectory is refused at
the door. The webhook secret is made here and shown once."""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import changed_fields, record, snapshot
from dbtlib.git import GitError, check_subdirectory, check_url
from kernel.errors import ErrorCode, RequestError
from kernel.secrets import secret_variable_problem
from kernel.webhooks import check_webhook
from lineage.models import GitProject
from lineage.projects import PROJECT_NAME, DbtProject, at_commit, git_cache, remote

FIELDS = ("name", "repository_url", "branch", "subdirectory", "credential", "status_url")
# git check-ref-format's rules, less the rare ones: no leading '-', no '..', no '@{', no control characters.
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*@\{)[A-Za-z0-9._/-]{1,255}(?<![./])$")
# The field at fault when the repository refuses a registration.
REFUSED_FIELD = {
    "auth": "credential", "unknown_ref": "branch", "no_project": "subdirectory", "bad_subdirectory": "subdirectory",
}  # fmt: skip
VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def _text(fields: dict[str, Any], name: str, default: str = "") -> str:
    value = fields.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str) or len(value) > 1000:
        raise RequestError(f"{name} must be text of at most 1000 characters", field=name)
    return value.strip()


def validate_git_project(fields: dict[str, Any], *, project: GitProject | None = None) -> dict[str, Any]:
    """The clean fields of a new project (or of `project`, whose name stays); RequestError
    naming the field. Nothing is stored."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    name = _text(fields, "name")
    if project is not None and name != project.name:
        raise RequestError("a project's name cannot change: register another project", field="name")
    if not PROJECT_NAME.fullmatch(name):
        raise RequestError("name must be 1-100 letters, digits, '_' or '-'", field="name")
    taken = (settings.DBT_PROJECTS_DIR / name / "dbt_project.yml").is_file() or GitProject.objects.filter(name=name)
    if project is None and taken:
        raise RequestError(f"there is a project named {name!r} already", field="name", code=ErrorCode.CONFLICT)
    try:
        url = check_url(_text(fields, "repository_url"))
        subdirectory = check_subdirectory(_text(fields, "subdirectory"))
    except GitError as exc:
        raise RequestError(str(exc), field=REFUSED_FIELD.get(exc.reason, "repository_url")) from None
    branch = _text(fields, "branch", "main") or "main"
    if not BRANCH.fullmatch(branch):
        raise RequestError(f"{branch!r} is not a branch name", field="branch")
    credential = _text(fields, "credential")
    if credential and not VARIABLE.fullmatch(credential):
        raise RequestError("credential must be the name of an environment variable", field="credential")
    if credential and (problem := secret_variable_problem(credential, "credential")):
        raise RequestError(problem, field="credential")
    status_url = _text(fields, "status_url")
    if status_url:
        check_webhook(status_url, "status_url")
    return {
        "name": name,
        "repository_url": url,
        "branch": branch,
        "subdirectory": subdirectory,
        "credential": credential,
        "status_url": status_url,
    }


def audited(project: GitProject) -> dict[str, Any]:
    """What the audit keeps of a git project: never the webhook secret."""
    return {key: value for key, value in snapshot(project).items() if key != "webhook_secret"}


def _reach(project: GitProject) -> None:
    """Resolve the project's branch and check that its head holds a safe dbt project, with
    this host's credential: project.last_sha is then that head."""
    repository = remote(project, field="credential")
    try:
        sha = git_cache().resolve(repository, project.branch)
        at_commit(DbtProject(project.name, None, git=project), sha)
    except GitError as exc:
        raise RequestError(str(exc), field=REFUSED_FIELD.get(exc.reason, "repository_url")) from None
    project.last_sha, project.last_resolved_at = sha, timezone.now()


def register_git_project(*, actor: Any, source: str, **fields: Any) -> GitProject:
    """Check the fields, then that the branch resolves and its commit holds a dbt project
    (reached with this host's credential), then store and audit it."""
    project = GitProject(**validate_git_project(fields), webhook_secret=secrets.token_urlsafe(32))
    _reach(project)
    project.created_by = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        project.save()
        record(actor, "project.register", project, after=audited(project), source=source)
    return project


def update_git_project(
    project: GitProject, *, actor: Any, source: str, rotate_webhook_secret: bool = False, **fields: Any
) -> GitProject:
    """Change some fields (reached again as at registration) and, asked to, make a new webhook
    secret; the audit row has the changes (a rotated secret as words, never the secret)."""
    if not isinstance(rotate_webhook_secret, bool):
        raise RequestError("rotate_webhook_secret must be true or false", field="rotate_webhook_secret")
    before = audited(project)
    clean = validate_git_project({name: getattr(project, name) for name in FIELDS} | fields, project=project)
    for name, value in clean.items():
        setattr(project, name, value)
    _reach(project)
    if rotate_webhook_secret:
        project.webhook_secret = secrets.token_urlsafe(32)
    before, after = changed_fields(before, audited(project), ignore=("last_sha", "last_resolved_at"))
    if rotate_webhook_secret:
        before["webhook_secret"], after["webhook_secret"] = "(previous secret)", "(new secret)"
    with transaction.atomic():
        project.save()
        if after:
            record(actor, "project.update", project, before=before, after=after, source=source)
    return project
