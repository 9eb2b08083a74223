"""Git projects: registration at the door, runs pinned to a commit and executed at exactly that
commit, the git hosts' webhooks, and slim CI on a pull request — against real git servers on
loopback (tests/gitservers.py), real dbt and the real warehouse. Runs execute in the test
process with the worker's code (execute_run)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from audit.models import AuditEvent
from dbtlib.environment import DBT_EXECUTABLE
from kernel.errors import RequestError
from lineage.models import GitProject, Snapshot
from runs.artifacts import COMPILED_SQL, open_artifact
from runs.ci import post_status
from runs.environments import project_number
from runs.jobs import create_job, trigger_job
from runs.models import Environment, Job, Run, RunState
from runs.notifications import sign
from runs.worker import execute_run
from tests.gitservers import PROJECT_FILES
from tests.hosts import free_port

pytestmark = pytest.mark.usefixtures("transactional_db", "dbt_projects_dir")

TOKEN_VARIABLE = "DBT_ENV_SECRET_GIT_TOKEN"


def register(api_client, admin_user, **fields):
    api_client.force_authenticate(admin_user)
    return api_client.post("/api/v1/projects/", fields, format="json")


@pytest.fixture
def shop(api_client, admin_user, project_repo, warehouse_conninfo):
    """The repository registered as git project `shop_git` by its path (no credential)."""
    answer = register(api_client, admin_user, name="shop_git", repository_url=str(project_repo.bare))
    assert answer.status_code == 201, answer.json()
    return project_repo


def ci_job(operator, name: str = "ci") -> Job:
    """A CI job of shop_git in an environment of its own (target `ci`), deferring to the default one."""
    environment, _ = Environment.objects.get_or_create(project="shop_git", name="ci", defaults={"target_name": "ci"})
    return create_job(
        actor=operator, source="api", project="shop_git", name=name, steps=["dbt build --select state:modified+"],
        environment=environment.pk, triggers_on_pull_request=True,
    )  # fmt: skip


def executed(run: Run) -> Run:
    execute_run(run.pk)
    run.refresh_from_db()
    return run


def built(run: Run) -> set[str]:
    return set(run.node_results.filter(status="success").values_list("name", flat=True))


def trigger(api_client, user, **body) -> Run:
    api_client.force_authenticate(user)
    answer = api_client.post("/api/v1/runs/", {"project": "shop_git", "command": "build", **body}, format="json")
    assert answer.status_code == 202, answer.json()
    return Run.objects.get(pk=answer.json()["id"])


def test_an_admin_registers_a_git_project_and_everyone_reads_its_commit(
    api_client, admin_user, operator, viewer, project_repo
):
    api_client.force_authenticate(operator)
    refused = api_client.post("/api/v1/projects/", {"name": "x", "repository_url": str(project_repo.bare)})
    assert refused.status_code == 403
    answer = register(api_client, admin_user, name="shop_git", repository_url=str(project_repo.bare), branch="main")
    assert answer.status_code == 201, answer.json()
    secret = answer.json()["webhook_secret"]
    assert len(secret) >= 32
    api_client.force_authenticate(viewer)
    shown = api_client.get("/api/v1/projects/shop_git/").json()
    assert shown["git"]["last_sha"] == project_repo.first
    assert shown["git"]["branch"] == "main"
    assert "webhook_secret" not in shown["git"]
    listed = {p["name"]: p for p in api_client.get("/api/v1/projects/").json()}
    assert listed["shop_git"]["git"]["repository_url"] == str(project_repo.bare)
    assert listed["inventory_transforms"]["git"] is None
    row = AuditEvent.objects.get(action="project.register")
    assert row.actor_username == admin_user.username and row.source == "api"
    assert row.after["repository_url"] == str(project_repo.bare) and secret not in json.dumps(row.after)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"repository_url": "ext::sh -c touch% pwned"}, "repository_url", ""),
        ({"repository_url": f"git://127.0.0.1:{free_port()}/shop.git"}, "repository_url", "cannot reach"),
        ({"branch": "no-such-branch"}, "branch", "no-such-branch"),
        ({"subdirectory": "README.md"}, "subdirectory", "dbt_project.yml"),
        ({"subdirectory": "../elsewhere"}, "subdirectory", ""),
        ({"credential": "PGPASSWORD"}, "credential", "PGPASSWORD"),
        ({"name": "inventory_transforms"}, "name", "already"),
        ({"status_url": "http://10.0.0.1/status"}, "status_url", "10.0.0.1"),
    ],
    ids=[
        "remote-helper",
        "unreachable",
        "branch",
        "no-project",
        "escaping-subdirectory",
        "portal-variable",
        "taken",
        "private-url",
    ],  # fmt: skip
)
def test_a_bad_registration_is_refused_naming_the_field_and_stores_nothing(
    api_client, admin_user, project_repo, fields, field, says
):
    body = {"name": "shop_git", "repository_url": str(project_repo.bare), **fields}
    answer = register(api_client, admin_user, **body)
    assert answer.status_code in (400, 409), answer.json()
    assert answer.json()["field"] == field
    assert says in answer.json()["detail"]
    assert not GitProject.objects.exists()
    assert not AuditEvent.objects.filter(action="project.register").exists()


def test_a_wrong_token_is_refused_without_showing_it(api_client, admin_user, http_git, project_repo, monkeypatch):
    url = f"{http_git.url}/{project_repo.bare.name}"
    monkeypatch.setenv(TOKEN_VARIABLE, "wrong-" + http_git.token)
    answer = register(api_client, admin_user, name="shop_git", repository_url=url, credential=TOKEN_VARIABLE)
    assert answer.status_code == 400 and answer.json()["field"] == "credential", answer.json()
    assert "authentication" in answer.json()["detail"] and "wrong-" not in answer.json()["detail"]
    monkeypatch.setenv(TOKEN_VARIABLE, http_git.token)
    answer = register(api_client, admin_user, name="shop_git", repository_url=url, credential=TOKEN_VARIABLE)
    assert answer.status_code == 201, answer.json()
    assert answer.json()["git"]["credential"] == TOKEN_VARIABLE
    assert http_git.token not in json.dumps(answer.json())


def test_each_run_executes_the_commit_it_was_pinned_to(api_client, client, operator, shop):
    first = trigger(api_client, operator)
    second_sha = shop.commit({"models/big_orders.sql": "select * from {{ ref('orders') }} where amount > 5\n"}, "Big")
    second = trigger(api_client, operator)
    old = trigger(api_client, operator, git_sha=shop.first)
    assert (first.git_sha, second.git_sha, old.git_sha) == (shop.first, second_sha, shop.first)
    assert first.git_branch == "main"
    for run in (second, first, old):  # the newer commit first: each checkout is its own
        assert executed(run).state == RunState.SUCCESS, run.reason
    assert built(first) == built(old) == {"orders", "customers", "order_totals"}
    assert built(second) == {"orders", "customers", "order_totals", "big_orders"}
    shown = api_client.get(f"/api/v1/runs/{second.pk}/").json()
    assert (shown["git_sha"], shown["git_branch"]) == (second_sha, "main")
    assert AuditEvent.objects.get(action="run.trigger", target_id=str(second.pk)).after["git_sha"] == second_sha
    client.force_login(operator)
    assert f"{second_sha[:12]}</code> on main" in client.get(f"/runs/{second.pk}/").content.decode()
    # the docs are the default branch's newest head's: runs of older commits never take them back
    assert Snapshot.objects.current().get(project="shop_git").run_id == second.pk
    assert (first.git_branch, old.git_branch) == ("main", "")


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"git_sha": "f" * 40}, "git_sha", "fffffff"),
        ({"git_sha": "abc"}, "git_sha", "40 hexadecimal"),
        ({"git_branch": "nope"}, "git_branch", "nope"),
    ],
    ids=["unknown-sha", "short-sha", "unknown-branch"],
)
def test_a_trigger_naming_an_unknown_commit_or_branch_is_refused(api_client, operator, shop, body, field, says):
    api_client.force_authenticate(operator)
    answer = api_client.post("/api/v1/runs/", {"project": "shop_git", **body}, format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["field"] == field and says in answer.json()["detail"]
    assert not Run.objects.exists()


def test_a_folder_project_refuses_a_commit(api_client, operator):
    api_client.force_authenticate(operator)
    answer = api_client.post("/api/v1/runs/", {"project": "inventory_transforms", "git_sha": "a" * 40}, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "git_sha"
    assert "folder" in answer.json()["detail"]


def test_a_commit_force_pushed_away_before_its_run_starts_ends_the_run_in_error(api_client, operator, shop):
    shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Soon gone")
    run = trigger(api_client, operator)
    shop.force_push("main", shop.first)
    shutil.rmtree(settings.GIT_CACHE_DIR)  # the run is taken by a host that never fetched the commit
    run = executed(run)
    assert run.state == RunState.ERROR
    assert f"cannot check out commit {run.git_sha[:12]}" in run.reason and "force-pushed" in run.reason
    assert not run.node_results.exists()


# --- webhooks -------------------------------------------------------------------------------------


def github(client, project: str, event: str, body: dict, secret: str):
    data = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    return client.post(
        f"/hooks/git/{project}/github/",
        data,
        content_type="application/json",
        headers={"X-GitHub-Event": event, "X-Hub-Signature-256": signature},
    )


def test_a_github_push_to_the_default_branch_refreshes_the_docs_at_that_commit(client, shop):
    project = GitProject.objects.get(name="shop_git")
    sha = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Add big_orders")
    push = {"ref": "refs/heads/main", "after": sha, "deleted": False}
    assert github(client, "shop_git", "push", push, "not-the-secret").status_code == 401
    assert github(client, "nobody", "push", push, project.webhook_secret).status_code == 401
    assert not Run.objects.exists()
    answer = github(client, "shop_git", "push", push, project.webhook_secret)
    assert answer.status_code == 202, answer.json()
    run = Run.objects.get(pk=answer.json()["runs"][0])
    assert (run.command, run.git_sha, run.source) == ("parse", sha, "webhook")
    assert AuditEvent.objects.get(action="run.trigger", target_id=str(run.pk)).actor_username == "github webhook"
    assert executed(run).state == RunState.SUCCESS, run.reason
    names = set(Snapshot.objects.current().get(project="shop_git").nodes.values_list("name", flat=True))
    assert "big_orders" in names
    other = github(client, "shop_git", "push", {**push, "ref": "refs/heads/feature"}, project.webhook_secret)
    assert other.status_code == 202 and other.json()["runs"] == []
    assert github(client, "shop_git", "ping", {"zen": "hi"}, project.webhook_secret).json()["detail"].endswith("pong")


def test_a_gitlab_push_is_checked_by_its_token(client, shop):
    project = GitProject.objects.get(name="shop_git")
    body = json.dumps({"ref": "refs/heads/main", "after": shop.first, "checkout_sha": shop.first})
    wrong = client.post(
        "/hooks/git/shop_git/gitlab/",
        body,
        content_type="application/json",
        headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"},
    )
    assert wrong.status_code == 401 and not Run.objects.exists()
    answer = client.post(
        "/hooks/git/shop_git/gitlab/",
        body,
        content_type="application/json",
        headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": project.webhook_secret},
    )
    assert answer.status_code == 202, answer.json()
    assert Run.objects.get().git_sha == shop.first


# --- slim CI --------------------------------------------------------------------------------------


def relations(conninfo: str, schema: str) -> set[str]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return {name for (name,) in rows}


def dbt_ls_state(project_dir: Path, state_dir: Path, tmp_path: Path) -> set[str]:
    """What real `dbt ls --select state:modified+ --state` lists (resource type model)."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev: {type: postgres, host: x, port: 1, user: x, password: x,"
        " dbname: x, schema: x, threads: 1}\n"
    )
    done = subprocess.run(
        [
            DBT_EXECUTABLE,
            "ls",
            "--select",
            "state:modified+",
            "--state",
            str(state_dir),
            "--resource-type",
            "model",
            "--output",
            "name",
            "--profiles-dir",
            str(profiles),
            "--project-dir",
            str(project_dir),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
            "--quiet",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        check=True,
    )
    return set(done.stdout.split())


def test_a_pull_request_builds_only_what_it_changes_into_its_own_schema_and_closing_drops_it(
    client, operator, shop, warehouse_conninfo, webhook, tmp_path
):
    hook, status_url = webhook
    GitProject.objects.filter(name="shop_git").update(status_url=status_url)
    project = GitProject.objects.get(name="shop_git")
    production = create_job(actor=operator, source="api", project="shop_git", name="nightly", steps=["dbt build"])
    ci = ci_job(operator)
    nightly = executed(trigger_job(production, actor=operator, source="api"))
    assert nightly.state == RunState.SUCCESS, nightly.reason
    prod_schema = nightly.environment.schema or "public"
    head = shop.commit(
        {
            "models/order_totals.sql": "select sum(amount) as total, count(*) as orders from {{ ref('orders') }}\n",
            "models/big_orders.sql": "select * from {{ ref('orders') }} where amount > 5\n",
        },
        "Count orders, list big ones",
        branch="feature",
    )
    shop.set_ref("refs/pull/7/head", head)
    opened = {"action": "opened", "number": 7, "pull_request": {"number": 7, "head": {"sha": head, "ref": "feature"}}}
    answer = github(client, "shop_git", "pull_request", opened, project.webhook_secret)
    assert answer.status_code == 202, answer.json()
    run = Run.objects.get(pk=answer.json()["runs"][0])
    schema = f"dbt_cloud_pr_{ci.pk}_7"
    assert (run.job_id, run.pull_request, run.git_sha, run.schema) == (ci.pk, 7, head, schema)
    run = executed(run)
    assert run.state == RunState.SUCCESS, run.reason
    assert built(run) == {"order_totals", "big_orders"}
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "manifest.json").write_bytes(_artifact(nightly, "manifest.json"))
    checkout = next(Path(settings.GIT_CACHE_DIR).glob(f"checkouts/*/{head}"))
    assert built(run) == dbt_ls_state(checkout, state_dir, tmp_path)
    assert run.changes == {
        "compared_with": nightly.pk,
        "new": ["model.shop.big_orders"],
        "modified": ["model.shop.order_totals"],
        "removed": [],
        "downstream": 0,
    }
    assert relations(warehouse_conninfo, schema) == {"order_totals", "big_orders"}
    compiled = _artifact(run, COMPILED_SQL, node="model.shop.order_totals").decode()
    assert f'"{prod_schema}"."orders"' in compiled  # deferred: production's orders, not built again
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "1 new, 1 modified, 0 removed" in page and "model.shop.big_orders" in page
    # its commit status, signed with the project's secret
    assert post_status(run.pk)
    body = hook.received[-1]
    assert (body["state"], body["sha"], body["pull_request"], body["context"]) == (
        "success",
        head,
        7,
        "transformation-portal/ci",
    )
    timestamp = hook.headers[-1]["X-Portal-Timestamp"]
    assert hook.headers[-1]["X-Portal-Signature"] == sign(project.webhook_secret, timestamp, hook.raw[-1])
    # closing the pull request drops its schema
    closed = {**opened, "action": "closed"}
    answer = github(client, "shop_git", "pull_request", closed, project.webhook_secret)
    cleanup = executed(Run.objects.get(pk=answer.json()["runs"][0]))
    assert cleanup.state == RunState.SUCCESS, cleanup.reason
    assert relations(warehouse_conninfo, schema) == set()
    with psycopg.connect(warehouse_conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone() is None
    assert "orders" in relations(warehouse_conninfo, prod_schema)


def _artifact(run: Run, name: str, node: str = "") -> bytes:
    with open_artifact(run, name, node=node).content as content:
        return content.read()


def test_dbt_clouds_trigger_with_a_pull_request_runs_it_as_ci_at_its_head(api_client, operator, shop):
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="feature")
    api_client.force_authenticate(operator)
    v2 = "/api/v2/accounts/1"
    created = api_client.post(
        f"{v2}/jobs/",
        {
            "account_id": 1,
            "project_id": project_number("shop_git"),
            "environment_id": Environment.objects.create(project="shop_git", name="ci", target_name="ci").pk,
            "name": "ci",
            "execute_steps": ["dbt build --select state:modified+"],
            "job_type": "ci",
        },  # fmt: skip
        format="json",
    )
    assert created.status_code == 201, created.json()
    job = created.json()["data"]
    assert (job["job_type"], job["triggers"]["git_provider_webhook"]) == ("ci", True)
    body = {"cause": "PR 12", "git_sha": head, "git_branch": "feature", "github_pull_request_id": 12}
    answer = api_client.post(f"{v2}/jobs/{job['id']}/run/", body, format="json")
    assert answer.status_code == 200, answer.json()
    shown = answer.json()["data"]
    assert (shown["git_sha"], shown["git_branch"], shown["trigger"]["github_pull_request_id"]) == (head, "feature", 12)
    run = Run.objects.get(pk=shown["id"])
    assert (run.pull_request, run.schema) == (12, f"dbt_cloud_pr_{job['id']}_12")
    listed = api_client.get(f"{v2}/runs/", {"pr_id": 12}).json()["data"]
    assert [item["id"] for item in listed] == [run.pk]


def test_an_admin_registers_a_git_project_on_the_projects_page(client, admin_user, operator, project_repo):
    client.force_login(operator)
    assert client.post("/lineage/", {"name": "x", "repository_url": str(project_repo.bare)}).status_code == 403
    assert "git-project-form" not in client.get("/lineage/").content.decode()
    client.force_login(admin_user)
    bad = client.post("/lineage/", {"name": "shop_git", "repository_url": str(project_repo.bare), "branch": "nope"})
    assert bad.status_code == 400 and "nope" in bad.content.decode() and not GitProject.objects.exists()
    page = client.post("/lineage/", {"name": "shop_git", "repository_url": str(project_repo.bare), "branch": "main"})
    assert page.status_code == 200
    assert page.content.decode().count('data-testid="git-project-form"') == 1
    project = GitProject.objects.get()
    text = page.content.decode()
    assert project.webhook_secret in text and project_repo.first[:12] in text
    again = client.get("/lineage/").content.decode()
    assert project.webhook_secret not in again and f"main at <code>{project_repo.first[:12]}</code>" in again
    assert AuditEvent.objects.get(action="project.register").source == "web"


def test_a_job_run_of_another_branch_runs_its_head_and_leaves_the_docs_to_the_default_branch(
    api_client, operator, shop
):
    main_run = executed(trigger(api_client, operator))
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="feature")
    job = create_job(actor=operator, source="api", project="shop_git", name="build", steps=["dbt build"])
    answer = api_client.post(f"/api/v1/jobs/{job.pk}/run/", {"git_branch": "feature"}, format="json")
    assert answer.status_code == 202, answer.json()
    assert (answer.json()["git_sha"], answer.json()["git_branch"]) == (head, "feature")
    run = executed(Run.objects.get(pk=answer.json()["id"]))
    assert run.state == RunState.SUCCESS, run.reason
    assert "big_orders" in built(run)
    assert Snapshot.objects.current().get(project="shop_git").run_id == main_run.pk


def test_gitlab_merge_request_events_run_ci_on_new_commits_only(client, operator, shop):
    project = GitProject.objects.get(name="shop_git")
    ci = ci_job(operator)
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="feature")

    def merge_request(action: str, **attributes):
        body = {"object_kind": "merge_request", "object_attributes": {
            "iid": 3, "action": action, "source_branch": "feature", "last_commit": {"id": head}, **attributes,
        }}  # fmt: skip
        headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": project.webhook_secret}
        return client.post("/hooks/git/shop_git/gitlab/", body, content_type="application/json", headers=headers)

    retitled = merge_request("update")  # no oldrev: the title changed, not the code
    assert retitled.status_code == 202 and retitled.json()["runs"] == []
    answer = merge_request("update", oldrev=shop.first)
    assert answer.status_code == 202, answer.json()
    run = Run.objects.get(pk=answer.json()["runs"][0])
    assert (run.job_id, run.pull_request, run.git_sha, run.git_branch) == (ci.pk, 3, head, "feature")
    assert run.schema == f"dbt_cloud_pr_{ci.pk}_3"
    closed = merge_request("merge")
    cleanup = Run.objects.get(pk=closed.json()["runs"][0])
    assert (cleanup.kind, cleanup.params) == ("ci_cleanup", {"schema": f"dbt_cloud_pr_{ci.pk}_3"})


def test_an_environment_a_ci_job_defers_to_cannot_be_deleted(api_client, admin_user, operator):
    from runs.environments import default_environment
    from runs.models import Environment

    dev = default_environment("inventory_transforms")
    prod = Environment.objects.create(project="inventory_transforms", name="prod", target_name="prod")
    create_job(
        actor=operator, source="api", project="inventory_transforms", name="ci", steps=["dbt build"],
        environment=dev.pk, triggers_on_pull_request=True, deferring_environment=prod.pk,
    )  # fmt: skip
    api_client.force_authenticate(admin_user)
    answer = api_client.delete(f"/api/v1/environments/{prod.pk}/")
    assert answer.status_code == 409 and "defer" in answer.json()["detail"]
    assert Environment.objects.filter(pk=prod.pk).exists()


def test_the_trigger_page_runs_a_branch_of_a_git_project(client, operator, shop):
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="feature")
    client.force_login(operator)
    form = {"project": "shop_git", "command": "build", "git_branch": "feature", "timeout_seconds": ""}
    answer = client.post("/runs/new/", form)
    assert answer.status_code == 302, answer.content.decode()[-2000:]
    assert (Run.objects.get().git_sha, Run.objects.get().git_branch) == (head, "feature")
    wrong = client.post("/runs/new/", {**form, "git_branch": "", "git_sha": "0" * 40})
    assert wrong.status_code == 400 and "0000000" in wrong.content.decode() and Run.objects.count() == 1


def test_pull_requests_from_forks_drafts_and_replays_run_nothing(client, operator, shop):
    project = GitProject.objects.get(name="shop_git")
    ci_job(operator)
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="feature")
    ours = {"full_name": "data/shop"}

    def opened(delivery: str, action: str = "opened", number=7, **pull):
        body = {"action": action, "number": number, "pull_request": {
            "head": {"sha": head, "ref": "feature", "repo": ours}, "base": {"repo": ours}, **pull,
        }}  # fmt: skip
        data = json.dumps(body).encode()
        signature = "sha256=" + hmac.new(project.webhook_secret.encode(), data, hashlib.sha256).hexdigest()
        headers = {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery}
        return client.post("/hooks/git/shop_git/github/", data, content_type="application/json", headers=headers)

    fork = opened("d1", head={"sha": head, "ref": "feature", "repo": {"full_name": "mallory/shop"}})
    assert fork.status_code == 202 and "fork" in fork.json()["detail"] and fork.json()["runs"] == []
    draft = opened("d2", draft=True)
    assert draft.status_code == 202 and "draft" in draft.json()["detail"]
    for number in (True, 2**31, "7"):
        assert opened(f"d3-{number}", number=number).status_code == 400
    assert opened("d4", head=["x"]).json()["runs"] == []  # a malformed head is no pull request of ours
    assert not Run.objects.exists()
    ready = opened("d5", action="ready_for_review")
    assert ready.status_code == 202 and len(ready.json()["runs"]) == 1
    again = opened("d5", action="ready_for_review")
    assert again.status_code == 202 and "handled already" in again.json()["detail"]
    assert Run.objects.count() == 1


def test_a_commit_naming_folders_outside_its_project_is_refused(api_client, operator, shop):
    shop.commit({"dbt_project.yml": PROJECT_FILES["dbt_project.yml"] + 'model-paths: ["models", "../../etc"]\n'}, "Up")
    api_client.force_authenticate(operator)
    answer = api_client.post("/api/v1/runs/", {"project": "shop_git", "command": "build"}, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "git_sha", answer.json()
    assert "model-paths '../../etc'" in answer.json()["detail"]
    assert not Run.objects.exists()


def test_a_commit_that_is_not_the_branchs_head_is_not_run_as_that_branch(api_client, operator, shop):
    shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big")
    api_client.force_authenticate(operator)
    body = {"project": "shop_git", "git_sha": shop.first, "git_branch": "main"}
    answer = api_client.post("/api/v1/runs/", body, format="json")
    assert answer.status_code == 400 and answer.json()["field"] == "git_sha"
    assert "not the head of branch 'main'" in answer.json()["detail"]


def test_viewers_see_the_status_url_masked(api_client, viewer, admin_user, shop):
    GitProject.objects.filter(name="shop_git").update(status_url="https://hooks.example.com/T000/secret-path")
    api_client.force_authenticate(viewer)
    assert api_client.get("/api/v1/projects/shop_git/").json()["git"]["status_url"] == "https://hooks.example.com…"
    api_client.force_authenticate(admin_user)
    shown = api_client.get("/api/v1/projects/shop_git/").json()["git"]["status_url"]
    assert shown == "https://hooks.example.com/T000/secret-path"


def test_a_ci_job_may_not_build_in_the_environment_it_defers_to(operator, shop):
    with pytest.raises(RequestError) as refused:
        create_job(
            actor=operator, source="api", project="shop_git", name="ci", steps=["dbt build --select state:modified+"],
            triggers_on_pull_request=True,
        )  # fmt: skip
    assert refused.value.field == "environment" and "custom schemas" in refused.value.message
    assert not Job.objects.exists()


def test_a_git_projects_job_installs_its_packages_with_dbt_deps(operator, shop):
    shop.commit(
        {
            "packages.yml": "packages:\n  - local: vendored/helpers\n",
            "vendored/helpers/dbt_project.yml": 'name: helpers\nversion: "1.0"\nconfig-version: 2\n',
            "vendored/helpers/macros/double.sql": "{% macro double(x) %}({{ x }} * 2){% endmacro %}\n",
            "models/doubled.sql": "select {{ helpers.double('amount') }} as twice from {{ ref('orders') }}\n",
        },
        "Use a package",
    )
    job = create_job(actor=operator, source="api", project="shop_git", name="deps", steps=["dbt deps", "dbt build"])
    run = executed(trigger_job(job, actor=operator, source="api"))
    assert run.state == RunState.SUCCESS, run.reason
    assert "doubled" in built(run)


def test_an_admin_changes_a_git_project_and_rotates_its_webhook_secret(api_client, admin_user, operator, shop):
    old_secret = GitProject.objects.get(name="shop_git").webhook_secret
    head = shop.commit({"models/big_orders.sql": "select 1 as n\n"}, "Big", branch="release")
    api_client.force_authenticate(operator)
    assert api_client.patch("/api/v1/projects/shop_git/", {"branch": "release"}, format="json").status_code == 403
    api_client.force_authenticate(admin_user)
    refused = api_client.patch("/api/v1/projects/shop_git/", {"branch": "nope"}, format="json")
    assert refused.status_code == 400 and refused.json()["field"] == "branch"
    assert GitProject.objects.get(name="shop_git").branch == "main"
    answer = api_client.patch(
        "/api/v1/projects/shop_git/", {"branch": "release", "rotate_webhook_secret": True}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    project = GitProject.objects.get(name="shop_git")
    assert (project.branch, project.last_sha) == ("release", head)
    assert answer.json()["webhook_secret"] == project.webhook_secret != old_secret
    row = AuditEvent.objects.get(action="project.update")
    assert row.before == {"branch": "main", "webhook_secret": "(previous secret)"}
    assert row.after == {"branch": "release", "webhook_secret": "(new secret)"}
    assert old_secret not in json.dumps([row.before, row.after])
    push = {"ref": "refs/heads/release", "after": head}
    assert github(api_client, "shop_git", "push", push, old_secret).status_code == 401
