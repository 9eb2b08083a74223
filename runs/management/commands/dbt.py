from __future__ import annotations

import getpass
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from audit.models import Source
from dbtlib.commands import ALLOWED_COMMANDS
from kernel.errors import RequestError
from runs.models import Run, RunState
from runs.services import cancel_run, trigger_run
from runs.worker import execute_run


class Command(BaseCommand):
    help = (
        "Run a dbt command on a project under dbt_projects/ through the portal: a run row "
        "(source `command`), the project's write lock and an audit row, as from the pages; "
        "dbt's output is printed as it runs, and Ctrl-C cancels the run. "
        "E.g. `manage.py dbt inventory_transforms build --select +fct_users`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("project")
        parser.add_argument("command", nargs="+", help=f"one of: {', '.join(ALLOWED_COMMANDS)}")
        parser.add_argument("--select", "-s", nargs="+", default=[], help="dbt selector terms")
        parser.add_argument("--exclude", nargs="+", default=[], help="dbt selector terms")
        parser.add_argument("--vars", default="", help="a JSON object of vars the project declares")
        parser.add_argument("--full-refresh", action="store_true")
        parser.add_argument("--target", default="", help="profile target (default: the profile's)")
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--timeout", type=int, default=None, help="seconds (default RUN_DEFAULT_TIMEOUT)")

    def handle(self, *args, project: str, command: list[str], **options) -> None:
        try:
            run = trigger_run(
                project=project,
                command=" ".join(command),
                select=" ".join(options["select"]),
                exclude=" ".join(options["exclude"]),
                vars=options["vars"],
                full_refresh=options["full_refresh"],
                target=options["target"],
                threads=options["threads"],
                timeout_seconds=options["timeout"],
                actor=f"{getpass.getuser()} (manage.py dbt)",
                source=Source.COMMAND,
                enqueue=False,
            )
        except RequestError as error:
            raise CommandError(f"{error.field}: {error.message}" if error.field else error.message) from None
        self.stdout.write(f"run #{run.pk}")
        self._execute(run)
        run.refresh_from_db()
        if run.state != RunState.SUCCESS:
            raise CommandError(f"run #{run.pk} {run.state}: {run.reason}", returncode=run.exit_code or 1)

    def _execute(self, run: Run) -> None:
        """This process is the run's worker; the main thread waits so that Ctrl-C becomes
        a cancel request the worker acts on (dbt stops, the run ends `cancelled`)."""

        def work() -> None:
            try:
                execute_run(run.pk, echo=self.stdout.write)
            finally:
                connection.close()

        worker = threading.Thread(target=work, name=f"run-{run.pk}")
        worker.start()
        while worker.is_alive():
            try:
                worker.join(0.2)
            except KeyboardInterrupt:
                self.stderr.write("cancelling…")
                try:
                    cancel_run(run, actor=f"{getpass.getuser()} (manage.py dbt)", source=Source.COMMAND)
                except RequestError:
                    pass  # it ended meanwhile
