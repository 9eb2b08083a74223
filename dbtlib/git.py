"""Django-free: dbt projects kept in git repositories. A run is pinned to a commit SHA; each
worker host checks out exactly that commit from a cache of its own (GitCache): one bare mirror
per remote, one checkout per commit, reused while it is used.

Only the `git` binary is run, with an environment built from nothing: no system or user
configuration, no prompts, no `ext::` transport, a timeout on every call. Credentials never
reach argv or stay on disk: an HTTPS token travels in an environment-borne `http.extraHeader`;
an SSH key is written to a 0600 file in a private temporary directory removed after the call.
SSH host keys are trusted on first use (`StrictHostKeyChecking=accept-new`) and pinned in the
known_hosts file given (GitCache: `<root>/known_hosts`). Every failure is a GitError whose
message may be shown to a user: git's own words, scrubbed of credentials and URLs' userinfo."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# GitError.reason: what went wrong, for the caller to branch on (the message is for people)
REASONS = (
    "bad_url",
    "bad_subdirectory",
    "unreachable",
    "auth",
    "unknown_ref",
    "unknown_sha",
    "no_project",
    "unsafe_project",
)


class GitError(Exception):
    """A repository the portal cannot use: `reason` (one of REASONS) and a message safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Remote:
    """Where a project's repository is and how to authenticate: `token` is sent by HTTP basic
    auth (user: the URL's userinfo, else "git"), `ssh_key` is an OpenSSH private key's text.
    Neither appears in repr()."""

    url: str
    token: str = field(default="", repr=False)
    ssh_key: str = field(default="", repr=False)


_SCHEMES = ("https", "http", "ssh", "git", "file")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*::")  # git's <transport>::<address> (ext::, fd::)
_HOST_NAME = r"[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]"  # a name, an IPv4 or a bracketed IPv6 address
_HOST = re.compile(_HOST_NAME)
_SCP = re.compile(rf"(?:(?P<user>[A-Za-z0-9._~+-]+)@)?(?P<host>{_HOST_NAME}):(?P<path>.+)")
_SHA = re.compile(r"[0-9a-f]{40}")
_URL_FORMS = "https://host/path, ssh://user@host/path, user@host:path, git://host/path or an absolute path"


def _bad_url(why: str) -> GitError:
    return GitError("bad_url", f"the repository URL {why}")


def _printable(text: str) -> bool:
    return not any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text)


def check_url(url: str) -> str:
    """The URL, if git may be pointed at it: https, http, ssh (URL or scp-like user@host:path),
    git, file and absolute local paths. Refused: other transports and remote helpers (ext::,
    fd::), a leading '-' (an option to git or ssh), whitespace and control characters, and a
    password in the URL (it belongs in the credential, which never reaches argv)."""
    if not url:
        raise _bad_url("is empty")
    if len(url) > 2048:
        raise _bad_url("is longer than 2048 characters")
    if not _printable(url):
        raise _bad_url("may not contain spaces or control characters")
    if url.startswith("-"):
        raise _bad_url("may not start with '-'")
    if _HELPER.match(url):
        raise _bad_url(f"uses a remote helper ('{url.split('::')[0]}::'), which the portal refuses")
    if match := _SCHEME.match(url):
        return _check_scheme_url(url, match.group(1).lower())
    if url.startswith("/"):
        return url
    scp = _SCP.fullmatch(url)
    if scp is None:
        raise _bad_url(f"is not one git reaches: use {_URL_FORMS}")
    if "@" in scp.group("path").split("/")[0] and ":" in url.split("@")[0]:
        raise _bad_url("holds a password: put it in the credential instead")
    return url


def _check_scheme_url(url: str, scheme: str) -> str:
    if scheme not in _SCHEMES:
        raise _bad_url(f"uses {scheme}://, which the portal refuses: use {_URL_FORMS}")
    parts = urllib.parse.urlsplit(url)
    if parts.password is not None:
        raise _bad_url("holds a password or token: put it in the credential instead")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _bad_url("must be file:///absolute/path")
        return url
    host = parts.netloc.rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not _HOST.fullmatch(host):
        raise _bad_url(f"has no valid host name: use {_URL_FORMS}")
    if parts.username is not None and (not parts.username or parts.username.startswith("-")):
        raise _bad_url("has an invalid user name")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _bad_url("has an invalid port") from None
    if not parts.path.strip("/"):
        raise _bad_url("names no repository (no path after the host)")
    return url


def check_subdirectory(sub: str) -> str:
    """The project's folder inside the repository, normalised ("" is the repository's root)."""
    if not _printable(sub.replace(" ", "")) or "\\" in sub:
        raise GitError("bad_subdirectory", "the subdirectory may not contain control characters or '\\'")
    if sub.startswith("/"):
        raise GitError("bad_subdirectory", "the subdirectory must be relative to the repository's root")
    parts = [part for part in sub.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise GitError("bad_subdirectory", "the subdirectory may not contain '..'")
    if ".git" in parts:
        raise GitError("bad_subdirectory", "the subdirectory may not name .git")
    return "/".join(parts)


def _check_sha(sha: str) -> str:
    if not _SHA.fullmatch(sha.lower()):
        raise GitError("unknown_sha", f"'{sha[:60]}' is not a full commit SHA (40 hexadecimal characters)")
    return sha.lower()


def _check_ref(ref: str) -> None:
    bad = (
        not ref
        or not _printable(ref)
        or ref.startswith(("-", "/"))
        or ref.endswith(("/", ".", ".lock"))
        or any(s in ref for s in ("..", "@{", "//", "\\", "~", "^", ":", "?", "*", "["))
    )
    if bad:
        raise GitError("unknown_ref", f"'{ref[:100]}' is not a valid branch or tag name")


# Every call's configuration: a link in the repository is checked out as a file holding its
# target (a project cannot point dbt at the host's files); no user attributes file.
_LOCAL_CONFIG = {"core.symlinks": "false", "core.attributesFile": os.devnull}

# --- running git ---------------------------------------------------------------------------------


def _config(entries: dict[str, str]) -> dict[str, str]:
    """git configuration through the environment (GIT_CONFIG_COUNT/KEY_n/VALUE_n): never argv."""
    env = {"GIT_CONFIG_COUNT": str(len(entries))}
    for i, (key, value) in enumerate(entries.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _basic(remote: Remote) -> str:
    user = urllib.parse.unquote(urllib.parse.urlsplit(remote.url).username or "") or "git"
    return base64.b64encode(f"{user}:{remote.token}".encode()).decode()


@contextmanager
def _git_env(remote: Remote, known_hosts: Path | None) -> Iterator[dict[str, str]]:
    """git's whole environment for one call on `remote`, in a private directory (an empty HOME,
    the SSH key) removed afterwards."""
    if not _printable(remote.token):
        raise GitError("auth", "the token may not contain spaces, line breaks or control characters")
    private = Path(tempfile.mkdtemp(prefix="portal-git-"))  # 0700
    try:
        home = private / "home"
        home.mkdir()
        settings = {
            **_LOCAL_CONFIG,
            "protocol.allow": "never",
            **{f"protocol.{scheme}.allow": "always" for scheme in _SCHEMES},
            "credential.helper": "",
            "gc.autoDetach": "false",  # auto gc ends inside the call (and its lock, its timeout)
            "http.lowSpeedLimit": "1000",
            "http.lowSpeedTime": "30",
        }
        if remote.token:
            settings["http.extraHeader"] = f"Authorization: Basic {_basic(remote)}"
        ssh = ["ssh", "-F", os.devnull, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20"]
        ssh += ["-o", "LogLevel=ERROR"]  # no "Permanently added ... to the list of known hosts" on stderr
        ssh += ["-o", "StrictHostKeyChecking=accept-new", "-o", f"GlobalKnownHostsFile={os.devnull}"]
        ssh += ["-o", f"UserKnownHostsFile={known_hosts or private / 'known_hosts'}"]
        if remote.ssh_key:
            key = private / "key"
            with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(remote.ssh_key.replace("\r\n", "\n").strip() + "\n")
            ssh += ["-i", str(key)]
        else:
            ssh += ["-o", "IdentityFile=none"]
        yield {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_SSH_COMMAND": shlex.join(ssh),
            "GIT_SSH_VARIANT": "ssh",
            **_config(settings),
        }
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _shown(remote: Remote) -> str:
    return _scrub(remote.url, remote)


def _scrub(text: str, remote: Remote) -> str:
    """`text` without the remote's credentials and without any URL's userinfo."""
    for secret in (remote.token, _basic(remote) if remote.token else "", remote.ssh_key.strip()):
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(r"(?i)(authorization:\s*\S+\s+)\S+", r"\1***", text)
    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/\s]*@", r"\1", text)


def _run(argv: list[str], env: dict[str, str], remote: Remote, timeout: float) -> subprocess.CompletedProcess[str]:
    """git `argv` in a session of its own, so a timeout ends it and its helpers (ssh, curl)."""
    process = subprocess.Popen(
        ["git", *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise GitError("unreachable", f"cannot reach {_shown(remote)}: no answer within {timeout:g} s") from None
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


_AUTH = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "permission denied",
    "access denied",
    "returned error: 401",
    "returned error: 403",
    "invalid username or password",
    "load key",
    "invalid format",
)
_UNREACHABLE = (
    "could not resolve",
    "failed to connect",
    "connection refused",
    "connection timed out",
    "timed out",
    "connection reset",
    "no route to host",
    "does not appear to be a git repository",
    "repository not found",
    "returned error: 404",
    "not found",
    "unable to access",
    "could not read from remote repository",
    "unexpected disconnect",
)


def _failure(done: subprocess.CompletedProcess[str], remote: Remote) -> GitError | None:
    """The GitError a failed remote call means, or None when git's words name no known cause."""
    said = _scrub(done.stderr, remote)
    lowered = said.lower()
    if "host key verification failed" in lowered or "remote host identification has changed" in lowered:
        return GitError(
            "auth",
            f"the SSH host key of {_shown(remote)} is not the one first seen (trust on first use): "
            "if the server's key really changed, remove its line from the cache's known_hosts",
        )
    if any(phrase in lowered for phrase in _AUTH):
        return GitError("auth", f"authentication failed for {_shown(remote)}: check its token or deploy key")
    if any(phrase in lowered for phrase in _UNREACHABLE):
        return GitError("unreachable", f"cannot reach {_shown(remote)}: {_last_words(said)}")
    return None


def _last_words(said: str) -> str:
    lines = [line.removeprefix("fatal: ").removeprefix("error: ").strip() for line in said.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "git failed"
    cause = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return cause[:300]  # the cause; what follows is advice


def _remote_call(argv: list[str], remote: Remote, timeout: float, known_hosts: Path | None) -> str:
    """A git call that talks to `remote`; its stdout, or the GitError its failure means."""
    with _git_env(remote, known_hosts) as env:
        done = _run(argv, env, remote, timeout)
    if done.returncode != 0:
        raise _failure(done, remote) or GitError(
            "unreachable", f"cannot reach {_shown(remote)}: {_last_words(_scrub(done.stderr, remote))}"
        )
    return done.stdout


# --- resolving a ref ----------------------------------------------------------------------------


def resolve(remote: Remote, ref: str, *, timeout: float = 30, known_hosts: Path | None = None) -> str:
    """The full SHA a branch or tag (or HEAD, or a full ref name) points at now, asked of the
    server with `git ls-remote` (nothing is cloned). A branch wins over a tag of the same name;
    an annotated tag gives its commit. A full SHA is its own answer (GitCache.commit_exists
    says whether the repository has it). `known_hosts`: where SSH host keys are pinned (None:
    a throw-away file, so every call trusts the key it is shown)."""
    check_url(remote.url)
    if _SHA.fullmatch(ref.lower()):
        return ref.lower()
    _check_ref(ref)
    if ref == "HEAD":
        wanted = ["HEAD"]
    elif ref.startswith("refs/"):
        wanted = [f"{ref}^{{}}", ref]
    else:
        wanted = [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    out = _remote_call(["ls-remote", "--", remote.url, *wanted], remote, timeout, known_hosts)
    found: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        found[name] = sha
    for name in wanted:
        if name in found:
            return found[name]
    raise GitError("unknown_ref", f"branch or tag '{ref}' not found in {_shown(remote)}")


# --- the per-host cache -------------------------------------------------------------------------

# What a full fetch brings when a server refuses a commit asked for by SHA: every branch and tag,
# and the hosts' pull and merge request heads (a run may be pinned to a proposed change).
_ALL_REFS = [f"+refs/{name}/*:refs/{name}/*" for name in ("heads", "tags", "pull", "merge-requests")]
_STALE_TEMP = ".tmp-"


class GitCache:
    """A worker host's cache under `root`: `mirrors/<url hash>.git`, a bare mirror per remote
    (commits fetched by SHA are kept by a ref `refs/pinned/<sha>`); `checkouts/<url hash>/<sha>/`,
    the tree of each commit used, made once and reused (its mtime says when it was last used);
    `known_hosts`, the SSH host keys met. One process at a time fetches into a mirror or makes
    a checkout (a file lock per remote); reading a finished checkout takes no lock."""

    def __init__(self, root: Path, *, timeout: float = 600) -> None:
        """`timeout`: seconds each fetch may take (a first clone of a large repository)."""
        self.root = root
        self.timeout = timeout
        self.known_hosts = root / "known_hosts"

    def resolve(self, remote: Remote, ref: str, *, timeout: float = 30) -> str:
        """resolve(), pinning SSH host keys in this cache's known_hosts."""
        self.root.mkdir(parents=True, exist_ok=True)
        return resolve(remote, ref, timeout=timeout, known_hosts=self.known_hosts)

    def commit_exists(self, remote: Remote, sha: str) -> bool:
        """Whether the repository has commit `sha`, fetching it into the mirror if need be."""
        check_url(remote.url)
        sha = _check_sha(sha)
        with self._locked(remote):
            return self._fetched(remote, sha)

    def checkout(self, remote: Remote, sha: str, subdirectory: str = "") -> Path:
        """The directory holding dbt_project.yml at exactly commit `sha`: the checkout made
        before, or a new one (fetched if the mirror lacks the commit, written to a temporary
        directory and renamed into place, so no one sees half a tree)."""
        check_url(remote.url)
        sha, subdirectory = _check_sha(sha), check_subdirectory(subdirectory)
        tree = self.root / "checkouts" / _key(remote) / sha
        if not _touch(tree):
            with self._locked(remote):
                if not _touch(tree):
                    if not self._fetched(remote, sha):
                        raise GitError(
                            "unknown_sha", f"commit {sha[:7]} is not in {_shown(remote)} any more (force-pushed away?)"
                        )
                    self._materialise(remote, sha, tree)
        project = tree / subdirectory if subdirectory else tree
        if not (project / "dbt_project.yml").is_file():
            where = f"'{subdirectory}'" if subdirectory else "the repository's root"
            raise GitError("no_project", f"no dbt_project.yml in {where} at {sha[:7]}")
        return project

    def prune(self, keep: Collection[str] = (), older_than: float = 7 * 24 * 3600) -> int:
        """Remove the checkouts not used for `older_than` seconds, except the commits in `keep`
        (those of runs still going); returns how many went. Mirrors stay. A checkout is moved
        aside before it is deleted, so a run never finds half of one."""
        removed, cutoff = 0, time.time() - older_than
        checkouts = self.root / "checkouts"
        for remote_dir in sorted(checkouts.iterdir()) if checkouts.is_dir() else ():
            with self._locked_key(remote_dir.name):
                for entry in sorted(remote_dir.iterdir()):
                    stale = entry.name.startswith(_STALE_TEMP)  # left by a killed process: no one owns it
                    if not stale and (entry.name in keep or entry.lstat().st_mtime >= cutoff):
                        continue
                    aside = remote_dir / f"{_STALE_TEMP}pruned-{secrets.token_hex(4)}"
                    entry.rename(aside)
                    _remove(aside)
                    removed += not stale
        return removed

    # --- under the remote's lock ---

    def _fetched(self, remote: Remote, sha: str) -> bool:
        """Whether the mirror has the commit, after fetching it if not: by SHA and shallow where
        the server allows it, else every branch, tag and pull/merge request head."""
        mirror = self._mirror(remote)
        if self._has(mirror, sha):
            return True
        argv = ["--git-dir", str(mirror), "fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
        with _git_env(remote, self.known_hosts) as env:
            done = _run([*argv, "--depth=1", "--", remote.url, f"+{sha}:refs/pinned/{sha}"], env, remote, self.timeout)
        if done.returncode == 0:
            return self._has(mirror, sha)
        if (error := _failure(done, remote)) is not None:
            raise error
        # "not our ref", "unadvertised object": a server that refuses commits asked for by SHA
        _remote_call([*argv, "--", remote.url, *_ALL_REFS], remote, self.timeout, self.known_hosts)
        if not self._has(mirror, sha):
            return False
        # pinned like a commit fetched by SHA: kept when its branch moves on
        _local(["--git-dir", str(mirror), "update-ref", f"refs/pinned/{sha}", sha], timeout=60)
        return True

    def _has(self, mirror: Path, sha: str) -> bool:
        return _local(["--git-dir", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"], timeout=60, check=False)

    def _mirror(self, remote: Remote) -> Path:
        mirror = self.root / "mirrors" / f"{_key(remote)}.git"
        if not mirror.is_dir():
            made = mirror.with_name(f"{_STALE_TEMP}{mirror.name}")
            shutil.rmtree(made, ignore_errors=True)
            _local(["init", "--quiet", "--bare", str(made)], timeout=60)
            made.rename(mirror)
        return mirror

    def _materialise(self, remote: Remote, sha: str, tree: Path) -> None:
        """Write commit `sha`'s files to `tree`: into a temporary directory, renamed into place."""
        made = tree.with_name(f"{_STALE_TEMP}{sha}-{secrets.token_hex(4)}")
        index = made.with_name(made.name + ".index")
        try:
            made.mkdir(parents=True)
            argv = ["--git-dir", str(self._mirror(remote)), "--work-tree", str(made), "read-tree", "--reset", "-u", sha]
            _local(argv, timeout=self.timeout, index=index)
            made.rename(tree)
        finally:
            index.unlink(missing_ok=True)
            _remove(made)

    @contextmanager
    def _locked(self, remote: Remote) -> Iterator[None]:
        with self._locked_key(_key(remote)):
            yield

    @contextmanager
    def _locked_key(self, key: str) -> Iterator[None]:
        """The remote's file lock (flock: released by the kernel if the process dies)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / key, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _key(remote: Remote) -> str:
    return hashlib.sha256(remote.url.encode()).hexdigest()[:24]


def _touch(tree: Path) -> bool:
    """Stamp a checkout as used now; False if there is none."""
    try:
        os.utime(tree)
    except FileNotFoundError:
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _local(argv: list[str], *, timeout: float, check: bool = True, index: Path | None = None) -> bool:
    """A git call inside the cache (no remote, no credentials): whether it succeeded. `check`:
    a failure raises (it means a broken cache or disk, not a user's mistake)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.devnull,
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        **({"GIT_INDEX_FILE": str(index)} if index else {}),
        **_config(_LOCAL_CONFIG),
    }
    done = subprocess.run(["git", *argv], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {argv[-2:]} failed in the cache: {done.stderr.strip()[:500]}")
    return done.returncode == 0


def is_ssh_url(url: str) -> bool:
    """Whether git reaches `url` over SSH (ssh://… or scp-like user@host:path): a project's
    credential is then a deploy key, else a token."""
    if match := _SCHEME.match(url):
        return match.group(1).lower() == "ssh"
    return not url.startswith("/") and _SCP.fullmatch(url) is not None
