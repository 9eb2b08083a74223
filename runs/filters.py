from __future__ import annotations

import django_filters

from audit.filters import UtcIsoDateTimeFilter
from audit.models import Source
from dbtlib.commands import ALLOWED_COMMANDS
from runs.models import Run, RunState


class RunFilter(django_filters.FilterSet):
    """Shared by the runs page and GET /api/v1/runs/."""

    project = django_filters.CharFilter(field_name="project", lookup_expr="exact")
    state = django_filters.MultipleChoiceFilter(choices=RunState.choices, distinct=False)
    command = django_filters.ChoiceFilter(choices=[(c, c) for c in ALLOWED_COMMANDS])
    kind = django_filters.CharFilter(field_name="kind")
    who = django_filters.CharFilter(field_name="triggered_by__username", lookup_expr="iexact", label="Who")
    source = django_filters.ChoiceFilter(choices=Source.choices, help_text="The door the run came through")
    job = django_filters.NumberFilter(field_name="job_id")
    since = UtcIsoDateTimeFilter(field_name="queued_at", lookup_expr="gte", label="Since")
    until = UtcIsoDateTimeFilter(field_name="queued_at", lookup_expr="lt", label="Until")

    class Meta:
        model = Run
        fields = ["project", "state", "command", "kind", "who", "source", "job", "since", "until"]
