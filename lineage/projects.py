"""The dbt projects the portal knows: folders under DBT_PROJECTS_DIR with a dbt_project.yml,
and git projects (GitProject rows), whose runs are pinned to a commit each host checks out
from its own cache (docs/projects.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from dbtlib.git import GitCache, GitError, Remote, is_ssh_url
from dbtlib.project import paths_leaving
from kernel.errors import RequestError
from kernel.secrets import SecretUnsetError, read_secret, secret_variable_problem
from lineage.models import GitProject

PROJECT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")


@dataclass(frozen=True)
class DbtProject:
    name: str  # the id used in URLs and the API: a folder's name, or a GitProject's
    path: Path | None  # the folder; for a git project, its checkout at `sha` (None before one)
    git: GitProject | None = None
    sha: str = ""

    @property
    def state_key(self) -> str:
        """Where its parse state is kept (runs.services.project_state_dir): per commit for git."""
        return f"{self.name}@{self.sha}" if self.sha else self.name


def _folders() -> list[DbtProject]:
    root: Path = settings.DBT_PROJECTS_DIR
    if not root.is_dir():
        return []
    return [
        DbtProject(child.name, child)
        for child in sorted(root.iterdir())
        if PROJECT_NAME.match(child.name) and (child / "dbt_project.yml").is_file()
    ]


def discover_projects() -> list[DbtProject]:
    folders = _folders()
    taken = {p.name for p in folders}
    gits = [DbtProject(row.name, None, git=row) for row in GitProject.objects.all() if row.name not in taken]
    return sorted(folders + gits, key=lambda p: p.name)


def get_project(name: str) -> DbtProject | None:
    """The project with that name, or None (names are never used as raw paths)."""
    return next((p for p in discover_projects() if p.name == name), None)


def git_cache() -> GitCache:
    return GitCache(settings.GIT_CACHE_DIR)


def remote(project: GitProject, field: str = "project") -> Remote:
    """The repository with this host's value of the project's credential."""
    secret = ""
    if project.credential:
        if problem := secret_variable_problem(project.credential, "credential"):
            raise RequestError(f"git project {project.name!r}: {problem}", field=field)
        try:
            secret = read_secret(project.credential)
        except SecretUnsetError as exc:
            raise RequestError(f"git project {project.name!r}: {exc}", field=field) from None
    if is_ssh_url(project.repository_url):
        return Remote(project.repository_url, ssh_key=secret)
    return Remote(project.repository_url, token=secret)


def git_refused(exc: GitError, field: str) -> RequestError:
    return RequestError(str(exc), field=field)


def pin(found: DbtProject, *, git_sha: str = "", git_branch: str = "") -> tuple[str, str]:
    """(sha, branch) a new run of `found` executes: `git_sha` (checked to be in the
    repository), else the head of `git_branch`, else of the project's branch. The branch is
    recorded only when the commit is its head now, so a run is the default branch's (and feeds
    lineage) only when it runs that branch's head. A folder project takes neither: ('', '').
    RequestError naming the field otherwise."""
    if found.git is None:
        for field, value in (("git_sha", git_sha), ("git_branch", git_branch)):
            if value:
                raise RequestError(
                    f"project {found.name!r} is a folder, not a git repository: {field} cannot be honoured", field=field
                )
        return "", ""
    project = found.git
    repository = remote(project)
    if git_sha:
        try:
            found_commit = git_cache().commit_exists(repository, git_sha)
        except GitError as exc:
            raise git_refused(exc, "git_sha") from None
        if not found_commit:
            raise RequestError(f"commit {git_sha[:12]} is not in {project.repository_url}", field="git_sha")
    branch = git_branch or project.branch
    if git_sha and not git_branch:
        return git_sha.lower(), ""
    try:
        head = git_cache().resolve(repository, branch)
    except GitError as exc:
        raise git_refused(exc, "git_branch" if git_branch else "project") from None
    if branch == project.branch:
        GitProject.objects.filter(pk=project.pk).update(last_sha=head, last_resolved_at=timezone.now())
    if git_sha and head != git_sha.lower():
        raise RequestError(
            f"commit {git_sha[:12]} is not the head of branch {branch!r} (at {head[:12]}): send git_sha alone to "
            "run an older commit",
            field="git_sha",
        )
    return head, branch


def at_commit(found: DbtProject, sha: str) -> DbtProject:
    """`found` checked out at `sha` on this host (a folder project as it is). GitError when
    the commit is not in the repository any more, has no dbt_project.yml, or names folders
    outside it (dbt would read the host's files)."""
    if found.git is None:
        return found
    path = git_cache().checkout(remote(found.git), sha, found.git.subdirectory)
    if leaving := paths_leaving(path):
        raise GitError(
            "unsafe_project",
            f"commit {sha[:7]} names folders outside the project, which the portal refuses: " + ", ".join(leaving),
        )
    return DbtProject(found.name, path, found.git, sha)
