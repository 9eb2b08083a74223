from __future__ import annotations

import json

from django import forms
from django.conf import settings

from lineage.projects import discover_projects
from runs.dbt.commands import ALLOWED_COMMANDS
from runs.dbt.selectors import MAX_SELECTOR_LENGTH


class TriggerRunForm(forms.Form):
    """The trigger page. A bare `project=<name>&command=parse` post is valid (lineage's
    "Parse now" button)."""

    project = forms.ChoiceField()
    command = forms.ChoiceField(choices=[(c, c) for c in ALLOWED_COMMANDS], initial="build")
    select = forms.CharField(
        required=False,
        max_length=MAX_SELECTOR_LENGTH,
        help_text="dbt node selection, e.g. <code>+fct_users</code>, <code>tag:nightly</code>, "
        "<code>path:models/staging</code>; space = union, comma = intersection.",
    )
    exclude = forms.CharField(required=False, max_length=MAX_SELECTOR_LENGTH, help_text="Same syntax as select.")
    vars = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"name": "value"}'}),
        help_text="JSON object; only vars the project declares in dbt_project.yml.",
    )
    full_refresh = forms.BooleanField(required=False, help_text="Rebuild incremental models and seeds from scratch.")
    timeout_seconds = forms.IntegerField(required=False, min_value=1, help_text="Empty = the default.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [(p.name, p.name) for p in discover_projects()]
        self.fields["timeout_seconds"].max_value = settings.RUN_MAX_TIMEOUT
        self.fields["timeout_seconds"].widget.attrs["max"] = settings.RUN_MAX_TIMEOUT
        self.fields["timeout_seconds"].widget.attrs["placeholder"] = str(settings.RUN_DEFAULT_TIMEOUT)

    def clean_vars(self) -> dict:
        text = self.cleaned_data["vars"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"vars are not valid JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("vars must be a JSON object of name → value")
        return value


class NotificationTargetForm(forms.Form):
    project = forms.ChoiceField(required=False)
    job = forms.ModelChoiceField(queryset=None, required=False, empty_label="any run of the project")
    emails = forms.CharField(required=False, max_length=2000, help_text="Comma-separated addresses.")
    webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", help_text="Receives a JSON POST."
    )
    on_failure = forms.BooleanField(required=False, initial=True, help_text="failed, error, timed out")
    on_success = forms.BooleanField(required=False)
    on_recovery = forms.BooleanField(required=False, help_text="the first success after a failure")

    def __init__(self, *args, **kwargs) -> None:
        from runs.models import Job

        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "every project")] + [(p.name, p.name) for p in discover_projects()]
        self.fields["job"].queryset = Job.objects.all()
