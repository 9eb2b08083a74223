"""Django-free: facts about a dbt project folder, and a cold `dbt parse` for validation."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from dbtlib.commands import build_argv
from dbtlib.environment import DBT_EXECUTABLE
from dbtlib.errors import DbtError

_SOURCE_DIRS = ("models", "seeds", "snapshots", "tests", "macros", "analyses")


def declared_vars(project_dir: Path) -> set[str]:
    """Top-level `vars:` keys of dbt_project.yml (and keys scoped under a package name)."""
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    declared: set[str] = set()
    for key, value in (config.get("vars") or {}).items():
        if isinstance(value, dict) and key == config.get("name"):
            declared |= set(value)
        else:
            declared.add(key)
    return declared


# dbt_project.yml's keys naming folders dbt reads or (packages-install-path) replaces.
_PATH_KEYS = (
    "model-paths", "seed-paths", "test-paths", "analysis-paths", "macro-paths", "snapshot-paths", "docs-paths",
    "asset-paths", "function-paths", "packages-install-path",
)  # fmt: skip


def _leaves(path: Any) -> bool:
    parts = PurePosixPath(str(path)).parts
    return PurePosixPath(str(path)).is_absolute() or ".." in parts or "\\" in str(path)


def paths_leaving(project_dir: Path) -> list[str]:
    """The folders dbt_project.yml (and packages.yml's or dependencies.yml's local packages)
    name outside the project folder: absolute, or through `..`. A project from git must name
    none, or dbt would read (or `dbt deps` replace) the host's files."""
    config = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
    found = []
    for key in _PATH_KEYS:
        value = config.get(key)
        for path in value if isinstance(value, list) else [value] if value is not None else []:
            if _leaves(path):
                found.append(f"{key} {path!r}")
    for name in ("packages.yml", "dependencies.yml"):
        file = project_dir / name
        packages = (yaml.safe_load(file.read_text()) or {}).get("packages") if file.is_file() else None
        for package in packages if isinstance(packages, list) else []:
            if isinstance(package, dict) and "local" in package and _leaves(package["local"]):
                found.append(f"{name}'s local package {package['local']!r}")
    return found


def newest_source_mtime(project_dir: Path) -> float:
    newest = (project_dir / "dbt_project.yml").stat().st_mtime
    selectors = project_dir / "selectors.yml"
    if selectors.is_file():
        newest = max(newest, selectors.stat().st_mtime)
    for sub in _SOURCE_DIRS:
        root = project_dir / sub
        if root.is_dir():
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
    return newest


def parse_project(project_dir: Path, profiles_dir: Path, target_path: Path, env: Mapping[str, str]) -> Path:
    """Run a cold `dbt parse`, keeping its manifest.json in target_path; returns its path.
    Raises DbtError with dbt's last output when the project does not parse."""
    tmp = target_path.with_name(target_path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    argv = build_argv(
        "parse",
        project_dir=project_dir,
        profiles_dir=profiles_dir,
        target_path=tmp,
        log_path=tmp / "logs",
        log_format="text",
    )
    done = subprocess.run(
        [DBT_EXECUTABLE, *argv], env=dict(env), capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0 or not (tmp / "manifest.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise DbtError(
            f"dbt parse failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}",
            command="parse",
            exit_code=done.returncode,
            log_path=None,
        )
    target_path.mkdir(parents=True, exist_ok=True)
    # Only the manifest: this cold CLI's partial-parse file would not match the runs' profile.
    os.replace(tmp / "manifest.json", target_path / "manifest.json")
    shutil.rmtree(tmp, ignore_errors=True)
    return target_path / "manifest.json"
