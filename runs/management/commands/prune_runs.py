from __future__ import annotations

import getpass

from django.core.management.base import BaseCommand, CommandError

from audit.models import Source
from kernel.errors import RequestError
from runs.retention import prune_runs


class Command(BaseCommand):
    help = (
        "Delete the run directories, stored artifacts, log chunks, node results and notification deliveries of runs "
        "finished more than RUN_RETENTION_DAYS (or --days) ago; run rows and the audit stay. "
        "Audited (source `command`). The queue does the same daily."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None, help="retention in days (default RUN_RETENTION_DAYS)")

    def handle(self, *args, days: int | None, **options) -> None:
        try:
            pruned = prune_runs(days=days, actor=f"{getpass.getuser()} (manage.py prune_runs)", source=Source.COMMAND)
        except RequestError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"pruned runs finished more than {pruned.days} days ago: {pruned.runs} runs, "
            f"{pruned.directories} directories, {pruned.artifacts} stored artifacts, {pruned.log_chunks} log chunks, "
            f"{pruned.node_results} node results, {pruned.deliveries} deliveries"
        )
