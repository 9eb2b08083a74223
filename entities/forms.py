from __future__ import annotations

from django import forms

from entities.models import Mode
from entities.services import MAX_TEXT


class ModeRequestForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices)
    canary_percent = forms.IntegerField(
        required=False, min_value=1, max_value=99, label="Canary %", help_text="Only for canary: 1–99"
    )
    reason = forms.CharField(max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("mode") == Mode.CANARY and data.get("canary_percent") is None:
            self.add_error("canary_percent", "Canary needs a percentage from 1 to 99.")
        if data.get("mode") != Mode.CANARY and data.get("canary_percent") is not None:
            self.add_error("canary_percent", "A percentage is only for canary.")
        return data


class RollbackForm(forms.Form):
    reason = forms.CharField(max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 2}))


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=MAX_TEXT, required=False, widget=forms.Textarea(attrs={"rows": 1}))
    override_reason = forms.CharField(
        max_length=MAX_TEXT,
        required=False,
        label="Parity override reason (admins)",
        widget=forms.Textarea(attrs={"rows": 1}),
    )
