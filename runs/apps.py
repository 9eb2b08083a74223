from __future__ import annotations

from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from runs import checks  # noqa: F401
        from runs.ci import CLEANUP_KIND, drop_pr_schemas, rerun_cleanup
        from runs.kinds import register_kind
        from runs.worker import warm_up

        register_kind(CLEANUP_KIND, drop_pr_schemas, "Pull request cleanup", rerun=rerun_cleanup)
        post_spawn.connect(warm_up, dispatch_uid="runs-warm-dbt-launcher")
