from __future__ import annotations

from typing import Any

from rest_framework import serializers

from accounts.models import Capability
from accounts.permissions import can
from dbtlib.selectors import MAX_SELECTOR_LENGTH
from kernel.errors import RequestError
from kernel.security import MASKED
from lineage.projects import get_project
from runs.history import FLAKY_FLIPS, FLAKY_WINDOW, HISTORY_LENGTH
from runs.models import Environment, Job, NodeResult, NotificationTarget, Run, RunStep, Worker
from runs.notifications import SECRET_MAX_LENGTH, SECRET_MIN_LENGTH, mask_url

_DATETIMES = frozenset({"queued_at", "started_at", "finished_at", "cancel_requested_at", "heartbeat_at"})


class RunStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunStep
        fields = [
            "index", "name", "command", "state", "exit_code", "started_at", "finished_at", "log_first_line",
            "log_end_line", "stops_job",
        ]  # fmt: skip
        read_only_fields = fields


GIT_SHA_HELP = "a git project's commit to run (7-40 hex digits); a folder project takes none"
GIT_BRANCH_HELP = "a git project's branch whose head to run; blank: the project's branch"


class RunSerializer(serializers.ModelSerializer):
    steps = RunStepSerializer(many=True, read_only=True, help_text="a job run's steps, in order ([] otherwise)")
    triggered_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    title = serializers.CharField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True, help_text="null until started")

    class Meta:
        model = Run
        fields = [
            "id", "project", "kind", "title", "command", "select", "exclude", "vars", "full_refresh",
            "target", "threads", "timeout_seconds", "params", "source", "triggered_by", "rerun_of",
            "state", "reason", "queued_at", "started_at", "finished_at", "duration_seconds",
            "cancel_requested_at", "exit_code", "worker", "worker_pid", "heartbeat_at", "nodes_total", "nodes_done",
            "nodes_failed", "log_lines", "job", "environment", "schema", "cause", "retry_of", "steps", "git_sha",
            "git_branch", "pull_request", "changes",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, instance: Run) -> dict[str, Any]:
        """The declared fields' output without DRF's per-field machinery, which was half the
        time of a list page (50 runs) at 100,000 runs. Datetimes still go
        through their field, so formats and time zones stay DRF's."""
        fields = self.fields
        data: dict[str, Any] = {}
        for name in self.Meta.fields:
            if name == "triggered_by":
                value = instance.triggered_by.username if instance.triggered_by_id else None
            elif name in ("rerun_of", "retry_of", "job", "environment"):
                value = getattr(instance, f"{name}_id")
            elif name == "steps":  # only dbt runs have steps: no query for a run kind's
                value = fields["steps"].to_representation(instance.steps.all()) if instance.kind == "dbt" else []
            else:
                value = getattr(instance, name)
                if name in _DATETIMES and value is not None:
                    value = fields[name].to_representation(value)
            data[name] = value
        return data


class RunCreateSerializer(serializers.Serializer):
    project = serializers.CharField(max_length=100)
    command = serializers.CharField(max_length=40, required=False, default="build")
    select = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_SELECTOR_LENGTH)
    exclude = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_SELECTOR_LENGTH)
    vars = serializers.JSONField(required=False, default=dict)
    full_refresh = serializers.BooleanField(required=False, default=False)
    timeout_seconds = serializers.IntegerField(required=False, allow_null=True, default=None)
    git_sha = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=255, help_text=GIT_SHA_HELP
    )
    git_branch = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=255, help_text=GIT_BRANCH_HELP
    )


class NodeResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeResult
        fields = [
            "unique_id", "name", "resource_type", "status", "started_at", "finished_at",
            "execution_time", "rows_affected", "failures", "message", "compiled_path",
        ]  # fmt: skip
        read_only_fields = fields


class HistoryResultSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(read_only=True, help_text="when it ended (the node's end, else its run's)")

    class Meta:
        model = NodeResult
        fields = ["run", "step", "status", "failures", "message", "execution_time", "rows_affected", "started_at", "at"]
        read_only_fields = fields


class NodeHistorySerializer(serializers.Serializer):
    project = serializers.CharField()
    unique_id = serializers.CharField()
    flips = serializers.IntegerField(
        help_text=f"changes between passing and not passing in the last {FLAKY_WINDOW} results"
    )
    flaky = serializers.BooleanField(help_text=f"flips ≥ {FLAKY_FLIPS}")
    results = HistoryResultSerializer(many=True, help_text=f"the last {HISTORY_LENGTH} results, newest first")


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = [
            "id", "project", "name", "target_name", "host", "port", "user", "dbname", "schema", "password_env",
            "threads", "env_vars", "is_default", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "host": {"help_text": "blank: the portal's warehouse (so are port, user, dbname when blank)"},
            "password_env": {
                "help_text": "the worker's environment variable holding the password (DBT_ENV_SECRET_*, or one "
                "ENVIRONMENT_PASSWORD_VARIABLES lists), or NAME_FILE; host, port, user, dbname, password_env "
                "and env_vars: admins only"
            },
            "env_vars": {"help_text": "DBT_VAR_* names → text, for the project's env_var(); values shown to operators"},
        }
        validators = []  # the service checks names and uniqueness, with clear messages

    def to_representation(self, instance: Environment) -> dict[str, Any]:
        """env_vars values masked for whoever may not operate (viewers, approvers)."""
        data = super().to_representation(instance)
        if not can(self.context["request"].user, Capability.OPERATE):
            data["env_vars"] = dict.fromkeys(instance.env_vars or {}, MASKED)
        return data


class JobSerializer(serializers.ModelSerializer):
    environment = serializers.PrimaryKeyRelatedField(
        queryset=Environment.objects.all(), required=False, allow_null=True, help_text="blank: the project's default"
    )
    deferring_environment = serializers.PrimaryKeyRelatedField(
        queryset=Environment.objects.all(),
        required=False,
        allow_null=True,
        help_text="a CI job compares with and defers to this environment's latest successful run (blank: the "
        "project's default)",
    )
    steps = serializers.ListField(child=serializers.CharField(max_length=4000), min_length=1, max_length=30)
    next_run = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null without an enabled cron")
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id", "project", "name", "description", "environment", "steps", "timeout_seconds", "threads",
            "generate_docs", "run_source_freshness", "cron", "schedule_enabled", "alert_on_warn",
            "triggers_on_pull_request", "deferring_environment", "next_run", "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at", "updated_at"]
        validators = []


class JobRunSerializer(serializers.Serializer):
    """dbt Cloud's trigger body: a git project's run is pinned to git_sha, else to the head of
    git_branch or of the project's branch."""

    # (The docstring is the schema's description.) The fields keep dbt Cloud's names on the
    # wire; `validated_data` holds runs.jobs.trigger_job's keywords (each field's `source`).
    cause = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)
    steps_override = serializers.ListField(
        child=serializers.CharField(max_length=4000),
        source="steps",
        required=False,
        allow_null=True,
        min_length=1,
        max_length=30,
    )
    threads_override = serializers.IntegerField(
        source="threads", required=False, allow_null=True, min_value=1, max_value=64
    )
    target_name_override = serializers.CharField(
        source="target", required=False, allow_null=True, allow_blank=True, max_length=100
    )
    timeout_seconds_override = serializers.IntegerField(
        source="timeout_seconds", required=False, allow_null=True, min_value=0
    )
    schema_override = serializers.CharField(
        source="schema", required=False, allow_null=True, allow_blank=True, max_length=100
    )
    generate_docs_override = serializers.BooleanField(
        source="generate_docs", required=False, allow_null=True, default=None
    )
    git_sha = serializers.CharField(required=False, allow_blank=True, max_length=255, help_text=GIT_SHA_HELP)
    git_branch = serializers.CharField(required=False, allow_blank=True, max_length=255, help_text=GIT_BRANCH_HELP)

    # trigger_job's refusals of these are answered under the body's name (schema_override…);
    # those of threads, target and timeout_seconds keep the run's field name, as they always have.
    REFUSED_AS_SENT = ("steps", "schema", "generate_docs")

    def as_sent(self, exc: RequestError) -> RequestError:
        """trigger_job's refusal naming the override the body sent. A step's refusal keeps its
        sentence (it quotes the step) and names `steps` when the job's own steps are at fault."""
        if exc.field not in self.REFUSED_AS_SENT:
            return exc
        field = next(name for name, found in self.fields.items() if found.source == exc.field)
        if exc.field == "steps":
            if not self.validated_data.get("steps"):
                return exc
            return RequestError(exc.message, field=field, code=exc.code)
        message = exc.message.removeprefix(exc.field).lstrip()
        return RequestError(f"{field} {message}", field=field, code=exc.code)


class NotificationTargetSerializer(serializers.ModelSerializer):
    """A target as anyone may read it: no secret, and the webhook URL (Slack's and Teams'
    secret is its path) masked for whoever may not manage targets, as on the page."""

    job = serializers.PrimaryKeyRelatedField(
        queryset=Job.objects.all(), required=False, allow_null=True, help_text="only this job's runs (its project's)"
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=SECRET_MAX_LENGTH,
        help_text="the webhook's HMAC-SHA256 key; on create, omitted: a random one. Answered once, by the create",
    )
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True, allow_null=True)

    class Meta:
        model = NotificationTarget
        fields = [
            "id", "project", "job", "emails", "webhook_url", "on_failure", "on_success", "on_recovery", "enabled",
            "secret", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "project": {"help_text": "empty: every project; a job's target takes the job's project"},
            "on_failure": {"help_text": "failed, error, timed out; and warnings of a job that alerts on warn"},
            "on_recovery": {"help_text": "the first success after a failure"},
        }

    def validate_project(self, value: str) -> str:
        if value and get_project(value) is None:
            raise serializers.ValidationError(f"no dbt project {value!r}")
        return value

    def to_representation(self, instance: NotificationTarget) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not can(self.context["request"].user, Capability.MANAGE_SCHEDULES):
            data["webhook_url"] = mask_url(instance.webhook_url)
        return data


class NotificationTargetCreatedSerializer(NotificationTargetSerializer):
    """The create's answer: the target and, this once, its secret."""

    secret = serializers.CharField(read_only=True, help_text="shown this once: keep it to verify X-Portal-Signature")


class WorkerSerializer(serializers.ModelSerializer):
    alive = serializers.BooleanField(read_only=True, help_text="beat within RUN_STALE_AFTER_SECONDS")

    class Meta:
        model = Worker
        fields = ["name", "hostname", "pid", "started_at", "heartbeat_at", "alive"]
        read_only_fields = fields
