"""The git hosts' webhooks (docs/projects.md): `POST /hooks/git/<project>/github/` and
`…/gitlab/`. No login and no CSRF token: each delivery is authenticated by the project's
webhook secret, in its host's own scheme (GitHub: X-Hub-Signature-256, the HMAC-SHA256 of the
body; GitLab: X-Gitlab-Token, the secret itself), compared in constant time. A push to the
default branch refreshes the project's docs and lineage (a `dbt parse` run at that commit); a
pull request opened or updated runs the project's CI jobs on its head commit; closed, it
drops their schemas."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from audit.models import Source
from kernel.errors import RequestError
from lineage.models import GitProject
from runs import ci
from runs.models import Run
from runs.services import create_run, validate_request

logger = logging.getLogger(__name__)

PR_OPENED, PR_CLOSED = "opened", "closed"
ZERO_SHA = "0" * 40
MAX_NUMBER = 2**31 - 1
# Deliveries remembered by their id (GitHub's X-GitHub-Delivery, GitLab's X-Gitlab-Event-UUID):
# one sent again (a replay of a signed `closed`, say) is acknowledged and does nothing.
DELIVERY_MEMORY_SECONDS = 7 * 24 * 3600
NOT_FROM_FORKS = "a pull request from a fork: its code is not run (trigger its commit through the API to run it)"


@dataclass(frozen=True)
class Event:
    """What a delivery asks of the portal, whichever host sent it."""

    kind: str  # "push", "pull_request" or "" (nothing to do)
    branch: str = ""
    sha: str = ""
    number: int = 0
    action: str = ""  # a pull request's: PR_OPENED (opened, reopened, new commits) or PR_CLOSED
    why_ignored: str = ""


def _branch(ref: Any) -> str:
    return ref.removeprefix("refs/heads/") if isinstance(ref, str) and ref.startswith("refs/heads/") else ""


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any) -> int:
    """A pull request's number, or 0 when the delivery has none that fits."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_NUMBER else 0


def github_event(name: str, body: dict[str, Any]) -> Event:
    if name == "ping":
        return Event("", why_ignored="pong")
    if name == "push":
        if body.get("deleted") or body.get("after") == ZERO_SHA:
            return Event("", why_ignored="a deleted branch")
        return Event("push", branch=_branch(body.get("ref")), sha=_text(body.get("after")))
    if name == "pull_request":
        pull = _object(body.get("pull_request"))
        head, base = _object(pull.get("head")), _object(pull.get("base"))
        actions = {
            "opened": PR_OPENED, "reopened": PR_OPENED, "synchronize": PR_OPENED, "ready_for_review": PR_OPENED,
            "closed": PR_CLOSED,
        }  # fmt: skip
        action = actions.get(_text(body.get("action")))
        if action is None:
            return Event("", why_ignored=f"pull request action {body.get('action')!r}")
        if action == PR_OPENED and pull.get("draft"):
            return Event("", why_ignored="a draft pull request (it runs once ready for review)")
        if _object(head.get("repo")).get("full_name") != _object(base.get("repo")).get("full_name"):
            return Event("", why_ignored=NOT_FROM_FORKS)
        return Event(
            "pull_request",
            branch=_text(head.get("ref")),
            sha=_text(head.get("sha")),
            number=_number(body.get("number", pull.get("number"))),
            action=action,
        )
    return Event("", why_ignored=f"event {name!r}")


def gitlab_event(name: str, body: dict[str, Any]) -> Event:
    if name == "Push Hook":
        if body.get("after") == ZERO_SHA:
            return Event("", why_ignored="a deleted branch")
        return Event("push", branch=_branch(body.get("ref")), sha=_text(body.get("checkout_sha") or body.get("after")))
    if name == "Merge Request Hook":
        attributes = _object(body.get("object_attributes"))
        action = attributes.get("action")
        if action == "update" and not attributes.get("oldrev"):
            return Event("", why_ignored="a merge request update without new commits")
        actions = {"open": PR_OPENED, "reopen": PR_OPENED, "update": PR_OPENED, "close": PR_CLOSED, "merge": PR_CLOSED}
        if action not in actions:
            return Event("", why_ignored=f"merge request action {action!r}")
        if actions[action] == PR_OPENED and (attributes.get("draft") or attributes.get("work_in_progress")):
            return Event("", why_ignored="a draft merge request (it runs once marked ready)")
        if attributes.get("source_project_id") != attributes.get("target_project_id"):
            return Event("", why_ignored=NOT_FROM_FORKS)
        return Event(
            "pull_request",
            branch=_text(attributes.get("source_branch")),
            sha=_text(_object(attributes.get("last_commit")).get("id")),
            number=_number(attributes.get("iid")),
            action=actions[action],
        )
    return Event("", why_ignored=f"event {name!r}")


def _answer(status: int, detail: str, runs: list[Run] = ()) -> JsonResponse:
    return JsonResponse({"detail": detail, "runs": [run.pk for run in runs]}, status=status)


def _body(request: HttpRequest) -> dict[str, Any] | None:
    """The JSON body (GitHub may send it form-encoded as `payload=`), or None."""
    raw = request.body
    if request.content_type == "application/x-www-form-urlencoded":
        raw = (parse_qs(raw.decode("utf-8", "replace")).get("payload") or [""])[0].encode()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _handle(project: GitProject, event: Event, host: str) -> JsonResponse:
    actor = f"{host} webhook"
    if not event.kind:
        return _answer(202, f"nothing to do: {event.why_ignored}")
    if len(event.sha) != 40 or (event.kind == "pull_request" and not event.number):
        return _answer(400, "the delivery names no commit (or no pull request number)")
    try:
        if event.kind == "push":
            if event.branch != project.branch:
                return _answer(202, f"nothing to do: a push to {event.branch or 'a tag'}, not to {project.branch}")
            request = validate_request(
                project=project.name, command="parse", git_sha=event.sha, git_branch=project.branch
            )
            run = create_run(request.fields(), actor=actor, source=Source.WEBHOOK, cause=f"push to {project.branch}")
            return _answer(202, f"refreshing the docs at {event.sha[:12]}", [run])
        if event.action == PR_CLOSED:
            runs = ci.close_pull_request(project.name, number=event.number, actor=actor, source=Source.WEBHOOK)
            return _answer(202, f"pull request #{event.number} closed: dropping its schemas", runs)
        runs = ci.trigger_ci(
            project.name,
            number=event.number,
            sha=event.sha,
            branch=event.branch,
            actor=actor,
            source=Source.WEBHOOK,
        )
    except RequestError as exc:
        return _answer(422 if exc.status == 400 else exc.status, exc.message)
    if not runs:
        return _answer(202, f"nothing to do: project {project.name} has no CI job")
    return _answer(202, f"pull request #{event.number}: CI at {event.sha[:12]}", runs)


def _verified(project: GitProject | None, request: HttpRequest, host: str) -> bool:
    if project is None:
        return False
    secret = project.webhook_secret.encode()
    if host == "github":
        expected = "sha256=" + hmac.new(secret, request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), request.headers.get("X-Hub-Signature-256", "").encode())
    return hmac.compare_digest(secret, request.headers.get("X-Gitlab-Token", "").encode())


def _hook(host: str):
    events = {
        "github": ("X-GitHub-Event", "X-GitHub-Delivery", github_event),
        "gitlab": ("X-Gitlab-Event", "X-Gitlab-Event-UUID", gitlab_event),
    }
    header, delivery_header, read = events[host]

    @csrf_exempt  # authenticated by the project's webhook secret, not a session
    @require_POST
    def hook(request: HttpRequest, project: str) -> JsonResponse:
        found = GitProject.objects.filter(name=project).first()
        if not _verified(found, request, host):  # the same answer for an unknown project
            logger.warning("git webhook for %r refused: bad signature", project)
            return _answer(401, "the delivery's signature does not match this project's webhook secret")
        body = _body(request)
        if body is None:
            return _answer(400, "the delivery's body is not a JSON object")
        delivery = request.headers.get(delivery_header, "")[:100]
        key = f"git-delivery:{host}:{project}:{delivery}"
        if delivery and cache.get(key):
            return _answer(202, f"nothing to do: delivery {delivery} was handled already")
        answer = _handle(found, read(request.headers.get(header, ""), body), host)
        if delivery and answer.status_code < 400:  # one refused may be sent again
            cache.set(key, True, DELIVERY_MEMORY_SECONDS)
        return answer

    hook.__name__ = f"{host}_hook"
    return hook


github_hook = _hook("github")
gitlab_hook = _hook("gitlab")
