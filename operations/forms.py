from __future__ import annotations

from django import forms

from lineage.projects import discover_projects
from operations.models import WEEKDAYS, SlaKind
from operations.slas import SLA_FIELDS


class SlaForm(forms.Form):
    """An SLA's definition; operations.slas validates it (the job or source exists, the time
    zone, HH:MM, minutes ≥ 1) and says which field is wrong. Fields of other kinds are ignored."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=SlaKind.choices)
    job = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, help_text="Succeeded by, runs no longer than."
    )
    deadline = forms.CharField(required=False, max_length=5, help_text="Succeeded by: HH:MM, e.g. <code>06:30</code>.")
    time_zone = forms.CharField(
        required=False, max_length=64, initial="UTC", help_text="e.g. <code>Europe/Paris</code>."
    )
    weekdays = forms.MultipleChoiceField(
        required=False,
        choices=[(day, day.title()) for day in WEEKDAYS],
        widget=forms.SelectMultiple(attrs={"size": 7}),
        initial=WEEKDAYS,
        help_text="The days it is due (none chosen = every day).",
    )
    max_minutes = forms.IntegerField(required=False, label="Max minutes", help_text="Runs no longer than: minutes.")
    project = forms.ChoiceField(required=False, help_text="Source is fresh: the source's project.")
    source_unique_id = forms.CharField(
        required=False,
        max_length=500,
        help_text="Source is fresh: its unique_id, e.g. <code>source.proj.raw.orders</code>.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs) -> None:
        from runs.models import Job

        super().__init__(*args, **kwargs)
        self.fields["job"].choices = [("", "—")] + [(job.pk, f"{job.project}: {job.name}") for job in Job.objects.all()]
        self.fields["project"].choices = [("", "—")] + [(p.name, p.name) for p in discover_projects()]

    @staticmethod
    def initial_of(sla) -> dict:
        initial = {name: getattr(sla, name) for name in SLA_FIELDS}
        return initial | {"job": sla.job_id, "deadline": f"{sla.deadline:%H:%M}" if sla.deadline else ""}

    def service_fields(self) -> dict:
        """What the service takes: blank values as absent, so each kind's own check speaks."""
        return {name: value for name, value in self.cleaned_data.items() if value not in ("", None, [])} | {
            "enabled": self.cleaned_data["enabled"]
        }
