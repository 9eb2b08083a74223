from __future__ import annotations

from datetime import UTC, datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from audit.models import AuditEvent, Source


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, in UTC: PostgreSQL refuses offsets beyond ±15:59 that Python
    accepts, and a date at the edge of the calendar may have no UTC equivalent."""

    def to_python(self, value) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Enter a date-time within years 1 to 9999 in UTC.", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """?since= / ?until= filters: an out-of-range date or offset is a 400, never a 500."""

    field_class = UtcIsoDateTimeField


class AuditEventFilter(django_filters.FilterSet):
    """Shared by the audit page, its exports and GET /api/v1/audit/."""

    actor = django_filters.CharFilter(field_name="actor_username", lookup_expr="iexact", label="Actor")
    action = django_filters.CharFilter(field_name="action", lookup_expr="istartswith", label="Action")
    target = django_filters.CharFilter(method="filter_target", label="Target", help_text="type or type:id")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Since")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Until")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "source", "since", "until"]

    def filter_target(self, queryset, name, value: str):
        target_type, _, target_id = value.partition(":")
        queryset = queryset.filter(target_type__iexact=target_type.strip())
        return queryset.filter(target_id=target_id.strip()) if target_id else queryset
