"""Fill raw.users and raw.applications in the warehouse with synthetic directory exports."""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import Source
from audit.services import record
from entities.rawdata import RawDataError, load_raw_data


class Command(BaseCommand):
    help = (
        "Replace raw.users and raw.applications in the warehouse with N generated users and M "
        "applications carrying the demo seeds' dirty shapes (deterministic for a given --seed). "
        "Then run `dbt run` and `dbt test` (not `dbt seed`, which would load the demo rows back)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--users", type=int, required=True, help="raw.users rows to generate")
        parser.add_argument("--applications", type=int, required=True, help="raw.applications rows to generate")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    def handle(self, *args: object, users: int, applications: int, seed: int, **options: object) -> None:
        if users < 0 or applications < 0:
            raise CommandError("--users and --applications must be zero or more")
        try:
            with psycopg.connect(settings.WAREHOUSE_CONNINFO) as conn:
                load = load_raw_data(conn, users=users, applications=applications, seed=seed)
        except (RawDataError, psycopg.Error) as error:
            raise CommandError(f"could not load raw data: {error}") from error
        record(
            "manage.py generate_raw_data",
            "warehouse.raw.generate",
            ("warehouse.schema", "raw"),
            after={"users": load.users, "applications": load.applications, "seed": load.seed},
            source=Source.COMMAND,
        )
        self.stdout.write(
            f"Loaded {load.users:,} users ({load.people:,} distinct people) into raw.users and "
            f"{load.applications:,} applications into raw.applications (seed {load.seed}) "
            f"in {load.seconds:.1f} s"
        )
