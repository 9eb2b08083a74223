"""Django-free: what a dbt child process sees."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


def dbt_environment(base: Mapping[str, str], warehouse: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`base` with every DBT_* variable scrubbed, then the warehouse's DBT_* set explicitly
    (plus extras such as DBT_APPLICATION_NAME)."""
    env = {k: v for k, v in base.items() if not k.startswith("DBT_")}
    env.update(warehouse)
    env.update(extra)
    return env
