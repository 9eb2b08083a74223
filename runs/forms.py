from __future__ import annotations

import json

from django import forms
from django.conf import settings

from dbtlib.commands import ALLOWED_COMMANDS
from dbtlib.selectors import MAX_SELECTOR_LENGTH
from lineage.projects import discover_projects


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
    git_branch = forms.CharField(
        required=False, max_length=255, label="Git branch", help_text="A git project's: empty = its default branch."
    )
    git_sha = forms.CharField(
        required=False,
        max_length=255,
        label="Git commit",
        help_text="A git project's full commit SHA; wins over the branch.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [(p.name, p.name) for p in discover_projects()]
        self.fields["timeout_seconds"].max_value = settings.RUN_MAX_TIMEOUT
        self.fields["timeout_seconds"].widget.attrs["max"] = settings.RUN_MAX_TIMEOUT
        self.fields["timeout_seconds"].widget.attrs["placeholder"] = str(settings.RUN_DEFAULT_TIMEOUT)

    def clean_vars(self) -> dict:
        return _json_object(self.cleaned_data["vars"], "vars")


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
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput,
        label="Webhook secret",
        help_text="Signs each webhook body (X-Portal-Signature). Blank = a random one, shown once after adding.",
    )

    def __init__(self, *args, **kwargs) -> None:
        from runs.models import Job

        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "every project")] + [(p.name, p.name) for p in discover_projects()]
        self.fields["job"].queryset = Job.objects.all()


def _json_object(text: str, what: str) -> dict:
    """A JSON object typed into a textarea ({} when blank); a form error otherwise."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"{what} are not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise forms.ValidationError(f"{what} must be a JSON object of name → value")
    return value


class JobForm(forms.Form):
    """A job's definition; runs.jobs validates it (steps against the manifest …). The
    project is chosen on create only."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    project = forms.ChoiceField()
    environment = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, help_text="Blank = the project's default environment."
    )
    steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "dbt seed\ndbt build --select +fct_users"}),
        help_text="One dbt command per line, run in order; a failed step stops the rest.",
    )
    timeout_seconds = forms.IntegerField(required=False, min_value=1, help_text="Empty = the default.")
    threads = forms.IntegerField(required=False, min_value=1, max_value=64, help_text="Empty = the environment's.")
    generate_docs = forms.BooleanField(required=False, help_text="<code>dbt docs generate</code> after the steps.")
    run_source_freshness = forms.BooleanField(
        required=False, help_text="<code>dbt source freshness</code> first; its failure does not stop the job."
    )
    cron = forms.CharField(
        required=False, max_length=100, help_text="minute hour day month weekday, e.g. <code>0 3 * * *</code>."
    )
    schedule_enabled = forms.BooleanField(required=False, label="Schedule enabled")
    alert_on_warn = forms.BooleanField(
        required=False,
        label="Alert on warnings",
        help_text="A success whose tests of warn severity fail notifies the on-failure targets.",
    )
    triggers_on_pull_request = forms.BooleanField(
        required=False,
        label="CI job (runs on pull requests)",
        help_text="A git project's pull requests run it on their head commit, into a schema of their own, with "
        "<code>state:</code> selectors (e.g. <code>dbt build --select state:modified+</code>) compared with the "
        "deferring environment's latest successful run, and everything else deferred to it.",
    )
    deferring_environment = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        help_text="A CI job's production: blank = the project's default environment.",
    )

    def __init__(self, *args, job=None, **kwargs) -> None:
        from runs.models import Environment

        super().__init__(*args, **kwargs)
        if job is None:
            self.fields["project"].choices = [(p.name, p.name) for p in discover_projects()]
            environments = Environment.objects.all()
        else:
            del self.fields["project"]
            environments = Environment.objects.filter(project=job.project)
        self.fields["environment"].choices = self.fields["deferring_environment"].choices = [
            ("", "project default")
        ] + [(e.pk, f"{e.project}: {e.name}") for e in environments]
        self.fields["timeout_seconds"].max_value = settings.RUN_MAX_TIMEOUT
        self.fields["timeout_seconds"].widget.attrs["placeholder"] = str(settings.RUN_DEFAULT_TIMEOUT)

    @staticmethod
    def initial_of(job) -> dict:
        from runs.jobs import JOB_FIELDS

        initial = {name: getattr(job, name) for name in JOB_FIELDS}
        return initial | {
            "environment": job.environment_id,
            "deferring_environment": job.deferring_environment_id,
            "steps": "\n".join(job.steps),
        }

    def clean_steps(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["steps"].splitlines() if line.strip()]


class EnvironmentForm(forms.Form):
    """An environment; blank connection fields take the portal's warehouse's. The connection
    (host, port, user, dbname, password variable, env vars) is set by admins only."""

    project = forms.ChoiceField()
    name = forms.CharField(max_length=100, help_text="dev, prod, …")
    target_name = forms.CharField(max_length=100, initial="dev", help_text="dbt's <code>target.name</code>.")
    host = forms.CharField(
        required=False, max_length=255, help_text="Blank = the portal's warehouse. Admins only, as all the connection."
    )
    port = forms.IntegerField(required=False, min_value=1, max_value=65535, help_text="Blank = the portal's warehouse.")
    user = forms.CharField(required=False, max_length=100, help_text="Blank = the portal's warehouse.")
    dbname = forms.CharField(required=False, max_length=100, help_text="Blank = the portal's warehouse.")
    schema = forms.CharField(required=False, max_length=100, help_text="Blank = the portal's warehouse schema.")
    password_env = forms.CharField(
        required=False,
        max_length=100,
        label="Password variable",
        help_text="The name of a worker environment variable starting with <code>DBT_ENV_SECRET_</code> (e.g. "
        "<code>DBT_ENV_SECRET_PROD_PASSWORD</code>, or one listed in <code>ENVIRONMENT_PASSWORD_VARIABLES</code>): "
        "the worker reads the password from it, or from the file named by <code>NAME_FILE</code>. The password "
        "itself is never stored or shown by the portal. Blank with a blank host = the portal's warehouse password.",
    )
    threads = forms.IntegerField(min_value=1, max_value=64, initial=4)
    env_vars = forms.CharField(
        required=False,
        label="Extra env vars",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"DBT_VAR_TEAM": "data"}'}),
        help_text="JSON object of NAME → text for the project's <code>env_var()</code>; names start with "
        "<code>DBT_VAR_</code>.",
    )
    is_default = forms.BooleanField(required=False, label="Project default", help_text="Jobs with no environment.")

    def __init__(self, *args, environment=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if environment is None:
            self.fields["project"].choices = [(p.name, p.name) for p in discover_projects()]
        else:
            del self.fields["project"]

    @staticmethod
    def initial_of(environment) -> dict:
        from runs.environments import ENVIRONMENT_FIELDS

        initial = {name: getattr(environment, name) for name in ENVIRONMENT_FIELDS}
        env_vars = json.dumps(environment.env_vars) if environment.env_vars else ""
        return initial | {"env_vars": env_vars, "is_default": environment.is_default}

    def clean_env_vars(self) -> dict:
        return _json_object(self.cleaned_data["env_vars"], "env vars")
