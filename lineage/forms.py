from __future__ import annotations

from django import forms


class ManifestUploadForm(forms.Form):
    manifest = forms.FileField(help_text="manifest.json from dbt parse, compile, run or build (schema v10–v12)")
    catalog = forms.FileField(required=False, help_text="Optional catalog.json from dbt docs generate")


class GitProjectForm(forms.Form):
    """A git project (lineage.git_projects validates it and reaches the repository)."""

    name = forms.CharField(max_length=100, help_text="Its id in URLs and the API: letters, digits, _ and -.")
    repository_url = forms.CharField(
        max_length=1000,
        label="Repository",
        help_text="<code>https://…</code> (a token), <code>ssh://…</code> or <code>user@host:path</code> (a deploy "
        "key), <code>git://…</code> or a path on the hosts.",
    )
    branch = forms.CharField(max_length=255, initial="main", help_text="The default branch.")
    subdirectory = forms.CharField(
        max_length=500, required=False, help_text="Where <code>dbt_project.yml</code> is; blank: the root."
    )
    credential = forms.CharField(
        max_length=100,
        required=False,
        label="Credential variable",
        help_text="The name of the variable holding the token or the private key on every host (a "
        "<code>DBT_ENV_SECRET_*</code> one, or <code>NAME_FILE</code>); never the secret itself.",
    )
    status_url = forms.CharField(
        max_length=1000, required=False, label="Commit status URL", help_text="Where CI runs post their status."
    )
