"""Portal hosts on one machine: a web process (`runportal --web-only`) and worker clusters
(`runportal --worker-only`), each with its own PORTAL_WORKER_NAME and RUNS_DIR, as on
separate machines sharing only the databases, the broker and the artifact storage. Used by
tests/test_multihost.py and bench/scaleout_throughput.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Host:
    """One portal process tree (started in its own session, so SIGKILL of the host kills
    the whole tree except what started a session of its own: dbt's process groups)."""

    def __init__(
        self, role: str, name: str | None, work: Path, env: dict[str, str], runs_dir: Path | None = None
    ) -> None:
        """`name` None: the default PORTAL_WORKER_NAME (host name plus boot id)."""
        assert role in ("web", "worker")
        self.role, self.name = role, name
        label = name or "default"
        self.runs_dir = runs_dir or work / label / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = work / label / f"{role}.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port() if role == "web" else None
        self.git_cache_dir = work / label / "git"
        self.env = {
            **env, "RUNS_DIR": str(self.runs_dir), "GIT_CACHE_DIR": str(self.git_cache_dir), "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.env.pop("PORTAL_WORKER_NAME", None)
        if name is not None:
            self.env["PORTAL_WORKER_NAME"] = name
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """https when the host serves TLS_CERT_FILE (its clients then trust SSL_CERT_FILE)."""
        return f"{'https' if self.env.get('TLS_CERT_FILE') else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Host:
        argv = [sys.executable, str(REPO / "manage.py"), "runportal"]
        argv += ["--web-only", "--port", str(self.port)] if self.role == "web" else ["--worker-only"]
        with open(self.log_file, "a") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 90
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.role} host {self.name} did not come up:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        if self.role == "web":
            try:
                trust = ssl.create_default_context(cafile=self.env.get("SSL_CERT_FILE"))
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2, context=trust) as answer:
                    return answer.status == 200
            except OSError:
                return False
        # A worker host is ready when each of its queue workers says so (django-q2's line).
        return self.log_text().count("ready for work") >= int(self.env.get("QUEUE_WORKERS", "2"))

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the host's whole process group: no cleanup of any kind runs."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if not self.process or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.kill()


class Api:
    """The web host's API v1 with a bearer token, as automation calls it."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url, self.token = base_url, token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200) -> Any:
        status, content = self.call(method, path, body)
        assert status == expect, f"{method} {path}: {status} {content[:500]!r}"
        return json.loads(content)
