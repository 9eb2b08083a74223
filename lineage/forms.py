from __future__ import annotations

from django import forms


class ManifestUploadForm(forms.Form):
    manifest = forms.FileField(help_text="manifest.json from dbt parse, compile, run or build (schema v10–v12)")
    catalog = forms.FileField(required=False, help_text="Optional catalog.json from dbt docs generate")
