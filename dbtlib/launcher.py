"""Django-free: a warm dbt launcher (docs/decisions/0003-launcher-as-plain-subprocess.md).

A long-lived helper process imports dbt and the postgres adapter once, holds no database
connection, and forks one child per dbt invocation. Each child starts its own session
(process group), sends stdout/stderr to the run's log file, takes the run's environment,
runs `dbtRunner().invoke(argv)`, writes its exit code (0 ok, 1 node failures, 2 dbt could
not run) to a file and exits. The queue worker talks to the launcher over a pipe; it is a
plain subprocess, so it works from django-q2's daemonic workers, which may not start
multiprocessing children. When the worker dies (even by SIGKILL) the pipe closes: the
launcher stops the process groups of its children still running (SIGINT, SIGKILL after
ORPHAN_GRACE_SECONDS) and exits, so dbt never outlives its worker. It ignores SIGTERM: a
service manager's SIGTERM to the whole group is for the worker, which cancels its run.

Protocol, one JSON object per line: request {"argv", "env", "cwd", "log_file",
"exit_file"}, reply {"pid"} once the child leads its own process group.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from dbtlib.environment import dbt_environment

PRELOAD = (
    "dbt.cli.main",
    "dbt.adapters.postgres",
    "dbt.adapters.postgres.impl",
    "dbt.task.build",
    "dbt.task.run",
    "dbt.task.test",
    "dbt.task.seed",
    "dbt.task.compile",
    "dbt.task.list",
    "dbt.task.docs.generate",
    "dbt.task.freshness",
    "dbt.task.snapshot",
    "dbt.parser.manifest",
    "psycopg2",
)
_REPO_ROOT = Path(__file__).resolve().parents[1]
ORPHAN_GRACE_SECONDS = 5


class DbtExit(IntEnum):
    """How a dbt invocation ended: dbt's own exit codes, plus an interrupt."""

    SUCCESS = 0  # every node passed
    FAILURE = 1  # dbt ran and some node failed
    ERROR = 2  # dbt could not run (bad profile, parse error, killed before it said)
    INTERRUPTED = 130  # SIGINT: cancelled or timed out


def ignore_application_name_in_parse_state() -> bool:
    """dbt invalidates partial parsing when the profile's connection info changes, values
    included; every run has its own application_name (to find its backends), which would
    force a full parse each time although it cannot change what is parsed. Leave it out of
    that hash; connections still use it. This patches a private dbt method: if dbt changes
    it, runs still work (each one parses in full, slower) and the launcher says so on stderr.
    Returns whether the patch is in place."""
    try:
        from dbt.adapters.postgres.connections import PostgresCredentials

        keys: Callable[[Any], tuple[str, ...]] = PostgresCredentials._connection_keys
    except (ImportError, AttributeError) as exc:
        print(f"dbt launcher: every run will parse in full ({exc})", file=sys.stderr)
        return False
    if getattr(keys, "portal_patched", False):
        return True

    def connection_keys(self: Any) -> tuple[str, ...]:
        return tuple(key for key in keys(self) if key != "application_name")

    connection_keys.portal_patched = True  # type: ignore[attr-defined]
    PostgresCredentials._connection_keys = connection_keys  # type: ignore[method-assign]
    return True


def _child(request: dict[str, Any], started_w: int) -> None:
    code = DbtExit.ERROR
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log_fd = os.open(request["log_file"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.close(null_fd)
        os.write(started_w, b"1")  # leads its group, stdout on its log file: DbtProcess can tell it is the one
        os.close(started_w)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke(request["argv"])
        code = DbtExit.SUCCESS if result.success else DbtExit.FAILURE
        if result.exception is not None:
            code = DbtExit.ERROR
            print(json.dumps({"info": {"level": "error", "msg": f"dbt could not run: {result.exception}"}}))
    except KeyboardInterrupt:
        code = DbtExit.INTERRUPTED
    except BaseException:  # noqa: BLE001 - the child must always report and exit
        traceback.print_exc()
        code = DbtExit.ERROR
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            tmp = request["exit_file"] + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(str(int(code)))
            os.replace(tmp, request["exit_file"])
        finally:
            os._exit(code)


def serve() -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    ignore_application_name_in_parse_state()  # forked children inherit it
    # One resource tracker for all children (dbt makes multiprocessing locks), started here
    # so its shutdown chatter never lands in a run's log; its stderr goes nowhere: at exit it
    # warns about the semaphores of children that were killed, which is expected.
    stderr, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        resource_tracker.ensure_running()
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
        os.close(devnull)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps children; codes go to exit files
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C at the worker's terminal is the worker's business
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so is a SIGTERM to the group; the pipe's end is ours
    children: set[int] = set()
    try:
        _serve_requests(children)
    finally:
        for pid in children:
            stop_group(pid, ORPHAN_GRACE_SECONDS)


def _serve_requests(children: set[int]) -> None:
    """Fork a child per request until the worker's pipe closes; `children` keeps the
    process groups started (those gone are forgotten at each request)."""
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        children.difference_update([pid for pid in children if not group_alive(pid)])
        request = json.loads(line)
        started_r, started_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(started_r)
            _child(request, started_w)
        os.close(started_w)
        os.read(started_r, 1)
        os.close(started_r)
        children.add(pid)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()


@dataclass
class DbtProcess:
    """One dbt invocation, identified by its process group (= the child's pid) and its log file."""

    pid: int
    exit_file: Path
    log_file: Path

    def is_running(self) -> bool:
        """Whether this dbt still runs: its process group is alive and, while its leader lives,
        the leader is this dbt (leads_group_writing_to), not a process that got the pid after
        dbt ended. A group whose leader is gone is still dbt's (Linux reuses no pid that a
        process group still has), as is any live group where /proc is missing (not Linux)."""
        return group_is_dbt(self.pid, str(self.log_file))

    def exit_code(self) -> DbtExit | int | None:
        """dbt's exit code once it ended; None if it was killed before writing one."""
        try:
            code = int(self.exit_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            return DbtExit(code)
        except ValueError:
            return code

    def stop(self, grace_seconds: float) -> None:
        """stop_group, each signal only while the group is still this dbt."""
        stop_group(self.pid, grace_seconds, alive=self.is_running)


def leads_group_writing_to(pgid: int, prefix: str) -> bool:
    """Whether process `pgid` leads its own process group with its stdout on a file whose path
    starts with `prefix`: a dbt child the launcher started with that log file, not a process
    that got the pid later (its environment cannot tell: the launcher forks dbt without exec,
    so /proc/<pid>/environ still shows the launcher's). False where /proc cannot tell."""
    try:
        out = os.readlink(f"/proc/{pgid}/fd/1")
        leads = os.getpgid(pgid) == pgid
    except OSError:
        return False
    return leads and out.startswith(prefix)


def group_is_dbt(pgid: int, prefix: str) -> bool:
    """Whether process group `pgid` is still the dbt whose stdout starts with `prefix`: the
    group is alive and, while its leader lives, the leader leads it writing there (not a
    process that got the pid after dbt ended); a leader gone or not yet reaped is still dbt.
    See DbtProcess.is_running."""
    if not group_alive(pgid):
        return False
    return not Path(f"/proc/{pgid}").exists() or _unreaped(pgid) or leads_group_writing_to(pgid, prefix)


def _unreaped(pid: int) -> bool:
    """Whether process `pid` ended and waits to be reaped (a zombie: an orphaned dbt whose new
    parent has not reaped it yet). Its pid is still taken, so it is still the one dbt."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_group(pgid: int, grace_seconds: float, alive: Callable[[], bool] | None = None) -> None:
    """SIGINT (dbt cancels its queries), then SIGKILL after the grace period; each signal only
    while `alive()` holds (default: the group is alive)."""
    alive = alive or (lambda: group_alive(pgid))
    if not alive():
        return
    signal_group(pgid, signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive():
        signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)


class Launcher:
    """Client side, one per queue worker process; starts the helper on first use."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the helper (it imports dbt in the background) if it is not running."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        env = dbt_environment(os.environ, {})  # the helper holds no secret either; each child gets its run's env
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH", "")]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "dbtlib.launcher"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
            cwd=str(_REPO_ROOT),
            close_fds=True,
        )
        self._ready = False
        return self._proc

    def launch(
        self, argv: list[str], *, env: Mapping[str, str], cwd: Path, log_file: Path, exit_file: Path
    ) -> DbtProcess:
        request = {
            "argv": argv,
            "env": dict(env),
            "cwd": str(cwd),
            "log_file": str(log_file),
            "exit_file": str(exit_file),
        }
        with self._lock:
            for attempt in (1, 2):
                proc = self._start_locked()
                assert proc.stdin is not None and proc.stdout is not None  # both pipes
                try:
                    if not self._ready:
                        if proc.stdout.readline().strip() != "ready":
                            raise BrokenPipeError("dbt launcher did not start")
                        self._ready = True
                    proc.stdin.write(json.dumps(request) + "\n")
                    proc.stdin.flush()
                    reply = proc.stdout.readline()
                    if not reply:
                        raise BrokenPipeError("dbt launcher exited")
                    return DbtProcess(int(json.loads(reply)["pid"]), exit_file, log_file)
                except (BrokenPipeError, OSError, ValueError):
                    proc.kill()
                    self._proc = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")


if __name__ == "__main__":
    serve()
