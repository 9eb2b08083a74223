from __future__ import annotations

from tests.runs.conftest import queued  # noqa: F401 - the fixture, shared with tests/runs
