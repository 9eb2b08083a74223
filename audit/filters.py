from __future__ import annotations

import django_filters

from audit.models import AuditEvent, Source


class AuditEventFilter(django_filters.FilterSet):
    """Shared by the audit page, its exports and GET /api/v1/audit/."""

    actor = django_filters.CharFilter(field_name="actor_username", lookup_expr="iexact", label="Actor")
    action = django_filters.CharFilter(field_name="action", lookup_expr="istartswith", label="Action")
    target = django_filters.CharFilter(method="filter_target", label="Target", help_text="type or type:id")
    source = django_filters.ChoiceFilter(choices=Source.choices)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="Since")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt", label="Until")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "source", "since", "until"]

    def filter_target(self, queryset, name, value: str):
        target_type, _, target_id = value.partition(":")
        queryset = queryset.filter(target_type__iexact=target_type.strip())
        return queryset.filter(target_id=target_id.strip()) if target_id else queryset
