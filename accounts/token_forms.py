from __future__ import annotations

from django import forms
from django.conf import settings

from accounts.tokens import MAX_TOKEN_DAYS


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. “airflow prod”.")
    days = forms.IntegerField(
        label="Expires in (days)",
        min_value=1,
        max_value=MAX_TOKEN_DAYS,
        initial=settings.API_TOKEN_DEFAULT_DAYS,
    )
