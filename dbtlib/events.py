"""Django-free: dbt's `--log-format json` lines, one event per line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DbtEvent:
    name: str
    level: str
    ts: str
    msg: str
    data: dict[str, Any]

    @property
    def node_info(self) -> dict[str, Any]:
        return self.data.get("node_info") or {}

    def render(self) -> str:
        clock = self.ts[11:19] if len(self.ts) >= 19 else ""
        return f"{clock}  {self.msg}" if clock else self.msg


def parse_line(line: str) -> DbtEvent | None:
    """The event on a JSON log line, or None for anything else (tracebacks, plain prints)."""
    if not line.startswith("{"):
        return None
    try:
        payload = json.loads(line)
    except json.JSONDecodeError:
        return None
    info = payload.get("info") if isinstance(payload, dict) else None
    if not isinstance(info, dict):
        return None
    return DbtEvent(
        name=str(info.get("name", "")),
        level=str(info.get("level", "info")),
        ts=str(info.get("ts", "")),
        msg=str(info.get("msg", "")),
        data=payload.get("data") if isinstance(payload.get("data"), dict) else {},
    )
