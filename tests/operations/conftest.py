from __future__ import annotations

# The webhook's far end and the test's own queue, shared with the runs tests.
from tests.runs.conftest import queued, webhook  # noqa: F401
