"""Test tools whose pins clash with the portal's: each in a virtualenv of its own, made once
under ~/.cache (XDG_CACHE_HOME) and reused afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def tool_executable(requirement: str | tuple[str, ...], executable: str) -> Path:
    """`executable` of the pinned `requirement` (e.g. "moto[server]==5.2.5", "moto_server"), or of
    several requirements resolved together in one virtualenv (a tool and its plugins), installed
    on first use."""
    requirements = (requirement,) if isinstance(requirement, str) else requirement
    name = "+".join(r.replace("==", "-").replace("[", "-").replace("]", "") for r in requirements)
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "transformation-portal" / name
    installed = venv / ".installed"
    if not installed.exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True, timeout=900)
        installed.touch()
    return venv / "bin" / executable
