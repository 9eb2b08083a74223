"""The watch that lets cancel and timeout reach a kind handler stuck inside one SQL
statement (a rules engine read waiting on a lock, a long COPY, the parity join): it never
logs, so ctx.log never gets the chance to raise RunInterrupted."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from django.db import connection

logger = logging.getLogger(__name__)

WATCH_SECONDS = 0.5


class InterruptWatch(threading.Thread):
    """While the block runs, every WATCH_SECONDS: once `check()` says cancelled or timed
    out, `terminate()` the run's warehouse backends (again each round, until the block ends,
    so a connection opened meanwhile goes too). Its own thread, so its own database connection."""

    def __init__(self, run_id: int, check: Callable[[], str | None], terminate: Callable[[], int]) -> None:
        super().__init__(name=f"interrupt-watch-run-{run_id}", daemon=True)
        self.check = check
        self.terminate = terminate
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(WATCH_SECONDS):
                try:
                    if self.check():
                        self.terminate()
                except Exception:  # noqa: BLE001 - try again next round; the run's own checks still hold
                    logger.exception("%s: check or terminate failed", self.name)
        finally:
            connection.close()

    def __enter__(self) -> InterruptWatch:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped.set()
        self.join(timeout=10)
