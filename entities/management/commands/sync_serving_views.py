"""Re-apply every entity's serving view from the mode the metadata DB holds."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from entities import router, services
from entities.models import EntityType


class Command(BaseCommand):
    help = "Re-point each serving.<entity> view at the mode recorded in the portal (the source of truth)."

    def handle(self, *args: object, **options: object) -> None:
        failed = []
        for entity in EntityType.objects.all():
            try:
                services.sync_serving_view(entity.name)
            except router.RouterError as error:
                failed.append(entity.name)
                self.stderr.write(f"{entity.serving_view}: {error}")
            else:
                self.stdout.write(f"{entity.serving_view}: {entity.mode_label}")
        if failed:
            raise CommandError(f"not applied: {', '.join(failed)}")
