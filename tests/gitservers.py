"""Git servers on loopback, each serving every bare repository under one folder, and a small dbt
project's repository to serve: the tests of dbtlib/git.py, of the portal's git projects and
bench/git_checkout.py use them.

- `git_daemon(root)`: `git daemon`, git://127.0.0.1:<port>/<name>.git, no authentication;
- `GitHttpServer(root, token)`: git's smart HTTP (`git http-backend`, a CGI program) behind a
  small threaded http.server that asks for basic auth (user "git", the token), at
  http://127.0.0.1:<port>/<name>.git; `protocol_v2=False` makes it a server that refuses
  commits asked for by SHA (protocol v0 without uploadpack.allowAnySHA1InWant);
- `SshServer(root)`: a private `sshd` (openssh-server) on its own port and host key, letting
  in the current user with one generated ed25519 deploy key, repositories by absolute path:
  ssh://<user>@127.0.0.1:<port>/<root>/<name>.git;
- `ProjectRepo(root, name)`: `<root>/<name>.git` holding a dbt project (three models), with a
  working clone to commit, branch, tag and (force-)push from.

The fixtures at the end (served_root, daemon_url, http_git, ssh_git, project_repo) wrap them for
pytest; tests/git/conftest.py imports them."""

from __future__ import annotations

import base64
import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.hosts import free_port

GIT_HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = Path("/usr/sbin/sshd")
NO_SSHD = "openssh-server is not installed (/usr/sbin/sshd): `make test` installs it when run as root"

# The tests' own git calls: no user or system configuration, a fixed author.
GIT_ENV = {
    "PATH": os.environ.get("PATH", os.defpath),
    "HOME": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(*args: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *map(str, args)], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(map(str, args))} failed: {done.stderr}")
    return done.stdout.strip()


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


# --- the repository --------------------------------------------------------------------------------

PROJECT_FILES = {
    "dbt_project.yml": 'name: shop\nversion: "1.0"\nconfig-version: 2\nprofile: shop\n',
    "models/orders.sql": "select 1 as order_id, 10 as amount\n",
    "models/customers.sql": "select 1 as customer_id\n",
    "models/order_totals.sql": "select sum(amount) as total from {{ ref('orders') }}\n",
    "README.md": "The shop's transformations.\n",
}


class ProjectRepo:
    """`<root>/<name>.git`, a bare repository whose branch main holds a dbt project (at
    `project_dir` inside it, "" for its root), and the working clone that writes to it."""

    def __init__(self, root: Path, name: str, *, project_dir: str = "") -> None:
        self.bare = root / f"{name}.git"
        self.work = Path(tempfile.mkdtemp(prefix=f"work-{name}-"))
        git("init", "--quiet", "--bare", "--initial-branch=main", self.bare)
        git("init", "--quiet", "--initial-branch=main", self.work)
        git("remote", "add", "origin", self.bare, cwd=self.work)
        prefix = f"{project_dir}/" if project_dir else ""
        self.first = self.commit({prefix + path: text for path, text in PROJECT_FILES.items()}, "Add the shop project")

    def commit(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        """Write (None: delete) `files` on `branch` (made from main if new), commit, push; the SHA."""
        if git("branch", "--show-current", cwd=self.work) != branch:
            exists = git("branch", "--list", branch, cwd=self.work)
            git("switch", "--quiet", *((branch,) if exists else ("-c", branch, "main")), cwd=self.work)
        for path, text in files.items():
            target = self.work / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "origin", branch, cwd=self.work)
        return self.sha(branch)

    def sha(self, ref: str) -> str:
        return git("rev-parse", f"{ref}^{{commit}}", cwd=self.bare)

    def tag(self, name: str, sha: str) -> None:
        """An annotated tag on the server."""
        git("tag", "--annotate", "-m", name, name, sha, cwd=self.bare)

    def set_ref(self, ref: str, sha: str) -> None:
        """Point a server's ref (a pull request's head: refs/pull/1/head) at a commit."""
        git("update-ref", ref, sha, cwd=self.bare)

    def force_push(self, branch: str, sha: str) -> None:
        """Force `branch` back to `sha`, then let the server forget what is no longer reachable
        (as a host's garbage collection does): a commit only that branch had is gone."""
        git("push", "--quiet", "--force", "origin", f"{sha}:refs/heads/{branch}", cwd=self.work)
        git("reflog", "expire", "--expire=now", "--all", cwd=self.bare)
        git("gc", "--quiet", "--prune=now", cwd=self.bare)


# --- git daemon ---------------------------------------------------------------------------------


@contextmanager
def git_daemon(root: Path) -> Iterator[str]:
    """`git daemon` serving the repositories under `root`; yields git://127.0.0.1:<port>."""
    port = free_port()
    argv = ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", "--export-all"]
    argv += ["--informative-errors", f"--base-path={root}", str(root)]
    process = subprocess.Popen(
        argv, env=GIT_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    _wait_listening(port, process, "git daemon")
    try:
        yield f"git://127.0.0.1:{port}"
    finally:
        _stop(process)


# --- smart HTTP -----------------------------------------------------------------------------------


class GitHttpServer:
    """git's smart HTTP behind basic auth (user `user`, password `token`) in a thread of this
    process. `requests` counts the requests served, `refused` those refused for their credential."""

    def __init__(self, root: Path, token: str, *, user: str = "git", protocol_v2: bool = True) -> None:
        self.root, self.token, self.protocol_v2, self.requests, self.refused = root, token, protocol_v2, 0, 0
        self.expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _GitHttpHandler)
        self.httpd.daemon_threads = True
        self.httpd.git = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _GitHttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # answers git's `Expect: 100-continue` at once

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _serve(self) -> None:
        git_server: GitHttpServer = self.server.git  # type: ignore[attr-defined]
        git_server.requests += 1
        body = self._body()
        if not secrets.compare_digest(self.headers.get("Authorization", ""), git_server.expected):
            git_server.refused += 1
            self._answer(401, {"WWW-Authenticate": 'Basic realm="git"'}, b"authentication required\n")
            return
        path, _, query = self.path.partition("?")
        env = {
            **GIT_ENV,
            "GIT_PROJECT_ROOT": str(git_server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "git",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if git_server.protocol_v2 and self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        done = subprocess.run([GIT_HTTP_BACKEND], input=body, env=env, capture_output=True, timeout=300, check=False)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")  # a CGI answer: headers, blank line, body
        headers = dict(line.split(": ", 1) for line in head.decode("latin-1").splitlines() if ": " in line)
        status = int(headers.pop("Status", "200").split()[0])
        self._answer(status, headers, payload)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers
            pass
        return b"".join(chunks)

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


# --- sshd ---------------------------------------------------------------------------------------


def ssh_key(path: Path) -> str:
    """A new ed25519 key pair at `path` and `path`.pub; the private key's OpenSSH text."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", path], check=True, timeout=30)
    return path.read_text()


class SshServer:
    """A private sshd on 127.0.0.1 letting the current user in with `private_key` (ed25519,
    OpenSSH text) only; `url(repo)` is an ssh:// URL of a repository by its absolute path."""

    def __init__(self) -> None:
        if not SSHD.exists():
            raise RuntimeError(NO_SSHD)
        self.dir = Path(tempfile.mkdtemp(prefix="sshd-"))
        self.user, self.port = getpass.getuser(), free_port()
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", self.dir / name], check=True
            )
        self.private_key = (self.dir / "client_key").read_text()
        self.host_key = (self.dir / "host_key.pub").read_text().split()[:2]
        (self.dir / "authorized_keys").write_text("restrict " + (self.dir / "client_key.pub").read_text())
        config = {
            "ListenAddress": f"127.0.0.1:{self.port}",
            "HostKey": self.dir / "host_key",
            "PidFile": self.dir / "sshd.pid",
            "AuthorizedKeysFile": self.dir / "authorized_keys",
            "StrictModes": "no",  # the temporary directory is not the user's home
            "PubkeyAuthentication": "yes",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "PermitRootLogin": "prohibit-password",
            "UsePAM": "no",
            "AcceptEnv": "GIT_PROTOCOL",  # git's protocol v2 over SSH
            "LogLevel": "ERROR",
        }
        (self.dir / "sshd_config").write_text("".join(f"{key} {value}\n" for key, value in config.items()))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.log = self.dir / "sshd.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", self.dir / "sshd_config"], stdout=log, stderr=log, start_new_session=True
            )
        _wait_listening(self.port, self.process, "sshd")

    def url(self, repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo}"

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- pytest fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every server of the module serves."""
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def daemon_url(served_root: Path) -> Iterator[str]:
    with git_daemon(served_root) as url:
        yield url


@pytest.fixture(scope="module")
def http_git(served_root: Path) -> Iterator[GitHttpServer]:
    server = GitHttpServer(served_root, "tok-" + secrets.token_hex(12))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ssh_git() -> Iterator[SshServer]:
    if not SSHD.exists():
        pytest.skip(NO_SSHD)
    server = SshServer()
    yield server
    server.stop()


@pytest.fixture
def project_repo(served_root: Path, request: pytest.FixtureRequest) -> ProjectRepo:
    """A fresh shop repository, named after the test."""
    return ProjectRepo(served_root, f"{request.node.name.replace('[', '-').rstrip(']')}-{secrets.token_hex(3)}")
