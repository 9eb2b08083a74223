from __future__ import annotations

from django.apps import AppConfig


class EntitiesConfig(AppConfig):
    name = "entities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from entities.queries import REFRESH_KIND
        from entities.refresh import execute_refresh, rerun_refresh
        from runs.kinds import register_kind

        register_kind(REFRESH_KIND, execute_refresh, "Entity refresh", rerun=rerun_refresh)
