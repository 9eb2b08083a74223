"""Django-free: one dbt invocation, from its work directory to its artifacts.

In the spirit of dagster-dbt's DbtCliInvocation: `prepare` lays out a private target and log
path (seeded with the project's partial-parse file) and builds the argv; `start` hands it to
the warm launcher; `lines` follows dbt's JSON output until the process group is gone; `stop`
interrupts it; `exit_code` says how it ended; `run_results` and `manifest` read what it
wrote. The queue worker drives it and keeps the database writes.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbtlib.artifacts import NodeOutcome, read_run_results
from dbtlib.commands import build_argv
from dbtlib.launcher import DbtExit, DbtProcess, Launcher
from dbtlib.manifest import Manifest

PARSE_STATE_FILES = ("manifest.json", "partial_parse.msgpack")


@dataclass
class DbtInvocation:
    command: str
    argv: list[str]
    cwd: Path
    target_path: Path
    log_path: Path
    output_file: Path  # dbt's stdout and stderr: JSON log lines, tracebacks
    exit_file: Path
    process: DbtProcess | None = field(default=None, repr=False)
    stopped: bool = False

    @classmethod
    def prepare(
        cls,
        command: str,
        *,
        project_dir: Path,
        profiles_dir: Path,
        work_dir: Path,
        index: int = 0,
        parse_state_dir: Path | None = None,
        **options: Any,
    ) -> DbtInvocation:
        """Make the invocation's own target and log paths under work_dir (the first one
        `target`/`logs`, later ones numbered), seeded with the partial-parse file kept in
        parse_state_dir, and build the argv from validated options (see build_argv)."""
        suffix = "" if index == 0 else f"-{index + 1}"
        target_path, log_path = work_dir / f"target{suffix}", work_dir / f"logs{suffix}"
        target_path.mkdir(parents=True, exist_ok=True)
        log_path.mkdir(parents=True, exist_ok=True)
        seed = parse_state_dir / "partial_parse.msgpack" if parse_state_dir else None
        if seed is not None and seed.is_file():
            shutil.copyfile(seed, target_path / seed.name)
        argv = build_argv(
            command,
            project_dir=project_dir,
            profiles_dir=profiles_dir,
            target_path=target_path,
            log_path=log_path,
            **options,
        )
        return cls(
            command=command,
            argv=argv,
            cwd=project_dir,
            target_path=target_path,
            log_path=log_path,
            output_file=work_dir / f"dbt-{index + 1}.jsonl",
            exit_file=work_dir / f"dbt-{index + 1}.exit",
        )

    @property
    def display(self) -> str:
        return "$ dbt " + " ".join(self.argv)

    def start(self, launcher: Launcher, env: Mapping[str, str]) -> DbtProcess:
        self.output_file.touch()
        self.process = launcher.launch(
            self.argv, env=env, cwd=self.cwd, log_file=self.output_file, exit_file=self.exit_file
        )
        return self.process

    def lines(self, idle_seconds: float = 0.05) -> Iterator[str | None]:
        """Each line dbt writes, as it comes, and None after each read (new lines or not)
        so the caller can flush, check for cancel and call stop(); ends once dbt's process
        group is gone and its last line was read."""
        assert self.process is not None, "start() first"
        with open(self.output_file, errors="replace") as stream:
            partial = ""
            while True:
                running = self.process.is_running()
                chunk = stream.read()
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                yield from lines
                if not running:
                    if partial:
                        yield partial
                    return
                yield None
                if not chunk:
                    time.sleep(idle_seconds)

    def stop(self, grace_seconds: float) -> None:
        """SIGINT to the process group (dbt cancels its queries), SIGKILL after the grace."""
        self.stopped = True
        if self.process is not None:
            self.process.stop(grace_seconds)

    @property
    def exit_code(self) -> DbtExit | int:
        """dbt's exit code once it ended; ERROR when it was killed before writing one."""
        code = self.process.exit_code() if self.process else None
        return DbtExit.ERROR if code is None else code

    def run_results(self) -> list[NodeOutcome]:
        """The node outcomes of run_results.json ([] when dbt wrote none); ArtifactError
        when the file is there but unreadable."""
        path = self.target_path / "run_results.json"
        return read_run_results(path) if path.is_file() else []

    def manifest(self) -> Manifest | None:
        """The manifest dbt wrote (None when it wrote none); ManifestError when unreadable."""
        path = self.target_path / "manifest.json"
        return Manifest.from_path(path) if path.is_file() else None

    def keep_parse_state(self, parse_state_dir: Path, tag: str) -> None:
        """Keep this invocation's manifest and partial-parse file as the project's latest
        (atomically: concurrent runs of the project may do the same)."""
        parse_state_dir.mkdir(parents=True, exist_ok=True)
        for name in PARSE_STATE_FILES:
            if (self.target_path / name).is_file():
                tmp = parse_state_dir / f".{name}.{tag}"
                shutil.copyfile(self.target_path / name, tmp)
                os.replace(tmp, parse_state_dir / name)
