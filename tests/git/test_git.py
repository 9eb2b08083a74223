"""dbtlib/git.py against real servers (git daemon, smart HTTP with basic auth, sshd with a
deploy key) and local paths: what a user sees of a repository (the files at a commit, the
messages of what went wrong), what a host's cache keeps, and that credentials leak nowhere."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dbtlib.git import GitCache, GitError, Remote, check_subdirectory, check_url, resolve
from tests.gitservers import GitHttpServer, ProjectRepo, git, ssh_key
from tests.hosts import REPO, free_port

ORDERS_V1 = "select 1 as order_id, 10 as amount\n"
ORDERS_V2 = "select 2 as order_id, 20 as amount\n"

TRANSPORTS = ["path", "file", "daemon", "http", "ssh"]


@pytest.fixture(params=TRANSPORTS)
def remote_of(request: pytest.FixtureRequest) -> Callable[[ProjectRepo], Remote]:
    """How a project names its repository, over each transport (with the server's credential)."""
    kind = request.param
    if kind == "path":
        return lambda repo: Remote(str(repo.bare))
    if kind == "file":
        return lambda repo: Remote(repo.bare.as_uri())
    if kind == "daemon":
        url = request.getfixturevalue("daemon_url")
        return lambda repo: Remote(f"{url}/{repo.bare.name}")
    if kind == "http":
        http = request.getfixturevalue("http_git")
        return lambda repo: Remote(f"{http.url}/{repo.bare.name}", token=http.token)
    ssh = request.getfixturevalue("ssh_git")
    return lambda repo: Remote(ssh.url(repo.bare), ssh_key=ssh.private_key)


@pytest.fixture
def cache(tmp_path: Path) -> GitCache:
    return GitCache(tmp_path / "cache")


def refused(call: Callable[..., object], *args: object, **kwargs: object) -> GitError:
    with pytest.raises(GitError) as caught:
        call(*args, **kwargs)
    return caught.value


def leftovers(cache: GitCache) -> list[str]:
    """What a failed call may not leave behind: half-made checkouts or mirrors."""
    return sorted(path.name for path in cache.root.rglob(".tmp-*"))


# --- over every transport ---------------------------------------------------------------------


def test_a_branch_resolves_and_each_commit_checks_out_as_it_was(project_repo, remote_of, cache):
    second = project_repo.commit({"models/orders.sql": ORDERS_V2, "models/customers.sql": None}, "Orders v2")
    remote = remote_of(project_repo)

    assert resolve(remote, "main") == second
    first_tree = cache.checkout(remote, project_repo.first)
    second_tree = cache.checkout(remote, second)

    assert (first_tree / "models" / "orders.sql").read_text() == ORDERS_V1
    assert (first_tree / "models" / "customers.sql").is_file()
    assert (second_tree / "models" / "orders.sql").read_text() == ORDERS_V2
    assert not (second_tree / "models" / "customers.sql").exists()
    assert sorted(path.name for path in second_tree.iterdir()) == ["README.md", "dbt_project.yml", "models"]
    assert cache.commit_exists(remote, second)


def test_a_tag_a_full_ref_and_a_sha_resolve(project_repo):
    second = project_repo.commit({"models/orders.sql": ORDERS_V2}, "Orders v2", branch="release")
    project_repo.tag("v1.0", project_repo.first)  # annotated: its own object, pointing at the commit
    project_repo.set_ref("refs/pull/7/head", second)
    remote = Remote(str(project_repo.bare))

    assert resolve(remote, "v1.0") == project_repo.first
    assert resolve(remote, "release") == second
    assert resolve(remote, "refs/pull/7/head") == second
    assert resolve(remote, "HEAD") == project_repo.first
    assert resolve(remote, second.upper()) == second


# --- what goes wrong, as a user reads it ------------------------------------------------------


def test_a_wrong_or_missing_token_is_an_auth_error_that_shows_no_secret(project_repo, http_git, cache):
    url = f"{http_git.url}/{project_repo.bare.name}"
    said = ("auth", f"authentication failed for {url}: check its token or deploy key")
    for remote in (Remote(url, token="wrong-secret-4711"), Remote(url)):
        error = refused(resolve, remote, "main")
        assert (error.reason, error.message) == said
        error = refused(cache.checkout, remote, project_repo.first)
        assert (error.reason, error.message) == said
    error = refused(resolve, Remote(url, token="tok\r\nX-Forwarded-For: 10.0.0.1"), "main")
    assert error.message == "the token may not contain spaces, line breaks or control characters"
    assert http_git.refused >= 4
    assert leftovers(cache) == []
    assert (cache.checkout(Remote(url, token=http_git.token), project_repo.first) / "dbt_project.yml").is_file()


def test_a_token_goes_with_the_url_s_user(project_repo, served_root):
    server = GitHttpServer(served_root, "tok-for-ci", user="ci")
    try:
        with_user = server.url.replace("http://", "http://ci@") + f"/{project_repo.bare.name}"
        assert resolve(Remote(with_user, token="tok-for-ci"), "main") == project_repo.first
        error = refused(resolve, Remote(f"{server.url}/{project_repo.bare.name}", token="tok-for-ci"), "main")
        assert error.reason == "auth"
    finally:
        server.stop()


def test_a_wrong_or_missing_deploy_key_is_an_auth_error_that_shows_no_secret(project_repo, ssh_git, cache, tmp_path):
    url = ssh_git.url(project_repo.bare)
    shown = url.replace(f"{ssh_git.user}@", "")
    other_key = ssh_key(tmp_path / "other")
    said = ("auth", f"authentication failed for {shown}: check its token or deploy key")
    for remote in (Remote(url, ssh_key=other_key), Remote(url)):
        error = refused(cache.checkout, remote, project_repo.first)
        assert (error.reason, error.message) == said
    assert leftovers(cache) == []


def test_an_ssh_host_key_is_trusted_on_first_use_then_held_to(project_repo, ssh_git, cache):
    remote = Remote(ssh_git.url(project_repo.bare), ssh_key=ssh_git.private_key)
    cache.resolve(remote, "main")
    assert cache.known_hosts.read_text().split() == [f"[127.0.0.1]:{ssh_git.port}", *ssh_git.host_key]

    ssh_key(cache.root / "impostor")  # a key the server never had, recorded for its address
    impostor = (cache.root / "impostor.pub").read_text().split()[:2]
    cache.known_hosts.write_text(" ".join([f"[127.0.0.1]:{ssh_git.port}", *impostor]) + "\n")
    error = refused(cache.checkout, remote, project_repo.first)
    assert error.reason == "auth"
    shown = remote.url.replace(f"{ssh_git.user}@", "")
    assert error.message.startswith(f"the SSH host key of {shown} is not the one first seen (trust on first use)")


def test_an_unknown_branch_is_named(project_repo, daemon_url):
    url = f"{daemon_url}/{project_repo.bare.name}"
    error = refused(resolve, Remote(url), "feature/nope")
    assert (error.reason, error.message) == ("unknown_ref", f"branch or tag 'feature/nope' not found in {url}")
    error = refused(resolve, Remote(url), "bad..name")
    assert (error.reason, error.message) == ("unknown_ref", "'bad..name' is not a valid branch or tag name")


def test_an_unknown_commit_is_named_and_leaves_nothing_behind(project_repo, daemon_url, cache):
    remote = Remote(f"{daemon_url}/{project_repo.bare.name}")
    unknown = "0123456789abcdef0123456789abcdef01234567"
    error = refused(cache.checkout, remote, unknown)
    assert (error.reason, error.message) == (
        "unknown_sha",
        f"commit 0123456 is not in {remote.url} any more (force-pushed away?)",
    )
    assert not cache.commit_exists(remote, unknown)
    assert refused(cache.checkout, remote, "abc123").message == (
        "'abc123' is not a full commit SHA (40 hexadecimal characters)"
    )
    assert leftovers(cache) == []
    assert (cache.checkout(remote, project_repo.first) / "models" / "orders.sql").read_text() == ORDERS_V1


@pytest.mark.parametrize("server", ["daemon", "http-v0"])
def test_a_force_push_takes_away_a_commit_the_cache_never_fetched(project_repo, served_root, daemon_url, server, cache):
    """Over protocol v2 the commit is asked for by SHA; the v0 server refuses that, so every
    ref is fetched instead: either way a commit gone from the server is reported."""
    http = GitHttpServer(served_root, "t0ken", protocol_v2=False)
    try:
        if server == "daemon":
            remote = Remote(f"{daemon_url}/{project_repo.bare.name}")
        else:
            remote = Remote(f"{http.url}/{project_repo.bare.name}", token="t0ken")
        kept = project_repo.commit({"models/orders.sql": ORDERS_V2}, "Orders v2", branch="kept")
        gone = project_repo.commit({"models/orders.sql": "-- work in progress\n"}, "WIP", branch="wip")
        assert resolve(remote, "wip") == gone
        cache.checkout(remote, kept)

        project_repo.force_push("wip", project_repo.first)
        project_repo.force_push("kept", project_repo.first)

        error = refused(cache.checkout, remote, gone)
        assert (error.reason, error.message) == (
            "unknown_sha",
            f"commit {gone[:7]} is not in {remote.url} any more (force-pushed away?)",
        )
        assert cache.prune(older_than=0) == 1  # the checkout of `kept` goes; the mirror keeps its commit
        assert (cache.checkout(remote, kept) / "models" / "orders.sql").read_text() == ORDERS_V2
    finally:
        http.stop()


def test_a_server_refusing_shas_still_gives_a_pull_request_s_earlier_commit(project_repo, served_root, cache):
    """A protocol v0 server serves only the commits its refs point at: the earlier head of a
    pull request comes with a fetch of every ref (refs/pull/* included)."""
    http = GitHttpServer(served_root, "t0ken", protocol_v2=False)
    try:
        remote = Remote(f"{http.url}/{project_repo.bare.name}", token="t0ken")
        proposed = project_repo.commit({"models/orders.sql": ORDERS_V2}, "Proposed", branch="fork")
        project_repo.commit({"models/orders.sql": "-- reviewed\n"}, "After review", branch="fork")
        project_repo.set_ref("refs/pull/3/head", project_repo.sha("fork"))
        git("update-ref", "-d", "refs/heads/fork", cwd=project_repo.bare)  # only the pull request has them

        assert (cache.checkout(remote, proposed) / "models" / "orders.sql").read_text() == ORDERS_V2
    finally:
        http.stop()


def test_a_project_in_a_subdirectory(served_root, cache):
    repo = ProjectRepo(served_root, "monorepo", project_dir="transform/shop")
    remote = Remote(str(repo.bare))

    project = cache.checkout(remote, repo.first, "./transform/shop/")
    assert project.name == "shop"
    assert (project / "models" / "orders.sql").read_text() == ORDERS_V1

    error = refused(cache.checkout, remote, repo.first)
    assert (error.reason, error.message) == (
        "no_project",
        f"no dbt_project.yml in the repository's root at {repo.first[:7]}",
    )
    error = refused(cache.checkout, remote, repo.first, "transform")
    assert (error.reason, error.message) == ("no_project", f"no dbt_project.yml in 'transform' at {repo.first[:7]}")


def test_an_unreachable_server_is_named(cache):
    url = f"git://127.0.0.1:{free_port()}/shop.git"
    error = refused(resolve, Remote(url), "main")
    assert error.reason == "unreachable"
    assert error.message.startswith(f"cannot reach {url}: unable to connect to 127.0.0.1")

    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/shop.git"
        error = refused(resolve, Remote(url), "main", timeout=1)
    assert (error.reason, error.message) == ("unreachable", f"cannot reach {url}: no answer within 1 s")


# --- the cache ----------------------------------------------------------------------------------


def test_two_hosts_processes_check_out_one_commit_at_once(project_repo, daemon_url, cache):
    remote = Remote(f"{daemon_url}/{project_repo.bare.name}")
    script = (
        "import sys; from pathlib import Path; from dbtlib.git import GitCache, Remote; "
        "print(GitCache(Path(sys.argv[1])).checkout(Remote(sys.argv[2]), sys.argv[3]))"
    )
    argv = [sys.executable, "-c", script, str(cache.root), remote.url, project_repo.first]
    processes = [subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=120)[0].strip() for process in processes]

    assert [process.returncode for process in processes] == [0, 0]
    assert outputs[0] == outputs[1]
    assert (Path(outputs[0]) / "models" / "orders.sql").read_text() == ORDERS_V1
    assert [path.name for path in Path(outputs[0]).parent.iterdir()] == [project_repo.first]
    assert len(list((cache.root / "mirrors").iterdir())) == 1


def test_a_warm_checkout_asks_no_server(project_repo, cache):
    remote = Remote(str(project_repo.bare))
    tree = cache.checkout(remote, project_repo.first)
    project_repo.bare.rename(project_repo.bare.with_name("away.git"))
    try:
        assert cache.checkout(remote, project_repo.first) == tree
    finally:
        project_repo.bare.with_name("away.git").rename(project_repo.bare)


def test_prune_keeps_the_commits_in_use_and_the_recent_ones(project_repo, cache):
    remote = Remote(str(project_repo.bare))
    second = project_repo.commit({"models/orders.sql": ORDERS_V2}, "Orders v2")
    third = project_repo.commit({"models/orders.sql": "select 3 as order_id, 30 as amount\n"}, "Orders v3")
    trees = {sha: cache.checkout(remote, sha) for sha in (project_repo.first, second, third)}
    for sha in (project_repo.first, second):
        os.utime(trees[sha], (1_000_000_000, 1_000_000_000))  # last used in 2001

    assert cache.prune(keep={project_repo.first}, older_than=3600) == 1

    assert sorted(sha for sha, tree in trees.items() if tree.is_dir()) == sorted([project_repo.first, third])
    assert (cache.checkout(remote, second) / "models" / "orders.sql").read_text() == ORDERS_V2


# --- input checks and secrets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/shop.git",
        "http://127.0.0.1:8080/shop.git",
        "https://ci@gitlab.example.com/acme/shop.git",
        "ssh://git@github.com:22/acme/shop.git",
        "ssh://git@[::1]:2222/shop.git",
        "git@github.com:acme/shop.git",
        "git://example.com/shop.git",
        "file:///srv/git/shop.git",
        "/srv/git/shop.git",
    ],
)
def test_the_urls_git_reaches_are_accepted(url):
    assert check_url(url) == url


FORMS = "https://host/path, ssh://user@host/path, user@host:path, git://host/path or an absolute path"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the repository URL is empty"),
        ("ext::sh%20-c%20id", "the repository URL uses a remote helper ('ext::'), which the portal refuses"),
        ("fd::17", "the repository URL uses a remote helper ('fd::'), which the portal refuses"),
        ("-uhttps://example.com/r.git", "the repository URL may not start with '-'"),
        ("https://example.com/a b.git", "the repository URL may not contain spaces or control characters"),
        ("https://example.com/r.git\n", "the repository URL may not contain spaces or control characters"),
        (
            "https://ci:hunter2@example.com/r.git",
            "the repository URL holds a password or token: put it in the credential instead",
        ),
        ("ci:hunter2@example.com:r.git", "the repository URL holds a password: put it in the credential instead"),
        ("ftp://example.com/r.git", f"the repository URL uses ftp://, which the portal refuses: use {FORMS}"),
        ("ssh://-oProxyCommand=id/r.git", f"the repository URL has no valid host name: use {FORMS}"),
        ("https://example.com", "the repository URL names no repository (no path after the host)"),
        ("https://example.com:99999/r.git", "the repository URL has an invalid port"),
        ("file://example.com/r.git", "the repository URL must be file:///absolute/path"),
        ("shop.git", f"the repository URL is not one git reaches: use {FORMS}"),
    ],
)
def test_other_urls_are_refused_before_git_runs(url, message, cache):
    error = refused(check_url, url)
    assert (error.reason, error.message) == ("bad_url", message)
    assert refused(resolve, Remote(url), "main").message == message
    assert refused(cache.checkout, Remote(url), "0" * 40).message == message
    assert not cache.root.exists()


@pytest.mark.parametrize(
    ("sub", "normalised"), [("", ""), (".", ""), ("./transform/", "transform"), ("a//b/./c", "a/b/c")]
)
def test_subdirectories_are_normalised(sub, normalised):
    assert check_subdirectory(sub) == normalised


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ("/etc", "the subdirectory must be relative to the repository's root"),
        ("../other", "the subdirectory may not contain '..'"),
        ("a/../../b", "the subdirectory may not contain '..'"),
        ("a/.git", "the subdirectory may not name .git"),
        ("a\\b", "the subdirectory may not contain control characters or '\\'"),
        ("a\nb", "the subdirectory may not contain control characters or '\\'"),
    ],
)
def test_bad_subdirectories_are_refused(sub, message):
    error = refused(check_subdirectory, sub)
    assert (error.reason, error.message) == ("bad_subdirectory", message)


def test_a_remote_s_repr_shows_no_credential():
    shown = repr(Remote("https://example.com/r.git", token="tok-123", ssh_key="-----BEGIN KEY-----"))
    assert shown == "Remote(url='https://example.com/r.git')"


def test_credentials_reach_neither_argv_nor_the_disk(project_repo, http_git, ssh_git, cache, tmp_path, monkeypatch):
    """git and ssh are wrapped to log their argv; the private directories (SSH key, empty HOME)
    live under a temporary directory of the test's own, empty again after each call."""
    shims, log = tmp_path / "bin", tmp_path / "argv.log"
    shims.mkdir()
    for tool in ("git", "ssh"):
        real = subprocess.run(["which", tool], capture_output=True, text=True, check=True).stdout.strip()
        (shims / tool).write_text(f'#!/bin/sh\nprintf "%s\\n" "{tool} $*" >> {log}\nexec {real} "$@"\n')
        (shims / tool).chmod(stat.S_IRWXU)
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(tempfile, "tempdir", str(private))

    https = Remote(f"{http_git.url}/{project_repo.bare.name}", token=http_git.token)
    ssh = Remote(ssh_git.url(project_repo.bare), ssh_key=ssh_git.private_key)
    for remote in (https, ssh):
        assert resolve(remote, "main") == project_repo.first
        assert cache.checkout(remote, project_repo.first).is_dir()
        assert list(private.iterdir()) == []

    argv = log.read_text()
    assert argv.count("git ls-remote") == 2 and argv.count("ssh ") >= 2
    key_body = ssh_git.private_key.splitlines()[1]
    assert http_git.token not in argv and key_body not in argv
    assert not [path for path in cache.root.rglob("*") if path.is_file() and key_body in path.read_text("latin-1")]
