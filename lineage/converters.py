"""URL converter for dbt unique_ids, registered once (both URL modules import this)."""

from __future__ import annotations

from django.urls import register_converter


class UniqueIdConverter:
    """dbt unique_ids contain dots (model.pkg.name, source.pkg.src.table, test.pkg.x.abc123)."""

    regex = r"[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(UniqueIdConverter, "unique_id")
