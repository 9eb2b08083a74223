from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import ExpressionWrapper, F, Q
from django.utils import timezone

from audit.models import Source
from dbtlib.commands import EXECUTING_COMMANDS
from kernel.security import mask_url


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"
    SKIPPED = "skipped", "Skipped"  # a job's cron slot while its previous run was still active


FINAL_STATES = frozenset(
    {RunState.SUCCESS, RunState.FAILED, RunState.ERROR, RunState.CANCELLED, RunState.TIMED_OUT, RunState.SKIPPED}
)
ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.STARTING, RunState.RUNNING})
# States that notify on failure (the project's and job's notification targets).
ALERT_STATES = frozenset({RunState.FAILED, RunState.ERROR, RunState.TIMED_OUT})


# Claimed by a worker and not final: the states its worker (or the reaper) may end.
IN_PROGRESS = (RunState.STARTING, RunState.RUNNING)


class RunQuerySet(models.QuerySet):
    """Besides the usual filters, the one owner of a run's state: every change of it is one of
    the transitions below (claim, start, finish, cancel, reap, ended at creation), each a
    conditional update that says whether it won, so a worker, the reaper and a cancel racing
    for one run change it once. tests/test_run_state.py keeps any other `state=` write out."""

    def active(self) -> RunQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def final(self) -> RunQuerySet:
        return self.filter(state__in=FINAL_STATES)

    def for_project(self, project: str) -> RunQuerySet:
        return self.filter(project=project)

    # --- transitions --------------------------------------------------------------------
    def create_ended(self, *, state: str, reason: str, at: datetime, **fields) -> Run:
        """A run that ends as it is made, never queued (a job's cron slot while its previous
        run is still active, a schedule that could not trigger); started and finished `at`.
        runs.services.create_ended_run audits it."""
        if state not in FINAL_STATES:
            raise ValueError(f"a run made final at once needs a final state, not {state!r}")
        return self.create(state=state, reason=reason, started_at=at, finished_at=at, **fields)

    def claim(self, pk: int, *, worker: str, worker_pid: int) -> bool:
        """queued → starting, by the worker that executes it: a task delivered twice, or a run
        cancelled while queued, starts nothing."""
        now = timezone.now()
        return bool(
            self.filter(pk=pk, state=RunState.QUEUED).update(
                state=RunState.STARTING,
                started_at=now,
                heartbeat_at=now,
                worker=worker,
                worker_pid=worker_pid,
                reason="starting",
            )
        )

    def start(self, pk: int, **fields) -> bool:
        """starting (or running) → running, with what its worker says (dbt's process group,
        paths, why it waits), and a beat; nothing once it is final."""
        return bool(
            self.filter(pk=pk, state__in=IN_PROGRESS).update(
                state=RunState.RUNNING, heartbeat_at=timezone.now(), **fields
            )
        )

    def beat(self, pk: int) -> bool:
        """Its worker's heartbeat, while the run is in progress (the state stays)."""
        return bool(self.filter(pk=pk, state__in=IN_PROGRESS).update(heartbeat_at=timezone.now()))

    def finish(self, pk: int, *, state: str, reason: str, exit_code: int | None) -> bool:
        """starting or running → its final state, by its worker; False when it was ended
        elsewhere first (the reaper's verdict stands)."""
        now = timezone.now()
        return bool(
            self.filter(pk=pk, state__in=IN_PROGRESS).update(
                state=state, reason=reason[:5000], exit_code=exit_code, finished_at=now, heartbeat_at=now
            )
        )

    def cancel_queued(self, pk: int, *, reason: str, at: datetime) -> bool:
        """queued → cancelled at once (no worker has it)."""
        return bool(
            self.filter(pk=pk, state=RunState.QUEUED).update(
                state=RunState.CANCELLED, finished_at=at, cancel_requested_at=at, reason=reason
            )
        )

    def request_cancel(self, pk: int, *, reason: str, at: datetime) -> bool:
        """A started run's cancel request (once), which its worker turns into `cancelled`."""
        return bool(
            self.filter(pk=pk, state__in=IN_PROGRESS, cancel_requested_at__isnull=True).update(
                cancel_requested_at=at, reason=reason
            )
        )

    def reap(self, run: Run, *, reason: str, at: datetime) -> bool:
        """starting or running → error, its worker lost: only while the row is as the reaper
        read it (same state, same last heartbeat)."""
        return bool(
            self.filter(pk=run.pk, state=run.state, heartbeat_at=run.heartbeat_at).update(
                state=RunState.ERROR, reason=reason, finished_at=at, reaped_at=at
            )
        )

    def lose_in_queue(self, run: Run, *, reason: str, at: datetime) -> bool:
        """queued → error, its task lost too often: only while it is still queued as the
        reaper read it (same enqueued_at)."""
        return bool(self._still_waiting(run).update(state=RunState.ERROR, reason=reason, finished_at=at))

    def resend(self, run: Run, *, at: datetime) -> bool:
        """Count one more sending of a run still queued as the reaper read it (the state
        stays); the caller enqueues it."""
        return bool(self._still_waiting(run).update(enqueued_at=at, enqueue_attempts=F("enqueue_attempts") + 1))

    def _still_waiting(self, run: Run) -> RunQuerySet:
        return self.filter(pk=run.pk, state=RunState.QUEUED, enqueued_at=run.enqueued_at)


class Run(models.Model):
    project = models.CharField(max_length=100, help_text="A folder under dbt_projects/ or a git project")
    kind = models.CharField(max_length=50, default="dbt", help_text="'dbt' or a kind registered in runs.kinds")
    params = models.JSONField(default=dict, blank=True, help_text="Parameters of a non-dbt kind")
    command = models.CharField(max_length=30, blank=True, help_text="dbt command, e.g. build, docs generate")
    select = models.TextField(blank=True)
    exclude = models.TextField(blank=True)
    vars = models.JSONField(default=dict, blank=True)
    full_refresh = models.BooleanField(default=False)
    target = models.CharField(max_length=100, blank=True, help_text="Profile target; empty = profile default")
    threads = models.PositiveSmallIntegerField(null=True, blank=True)
    timeout_seconds = models.PositiveIntegerField()

    source = models.CharField(max_length=20, choices=Source.choices, help_text="The door the run came through")
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        help_text="rerun from failure: only that run's errored and skipped nodes, then its remaining steps",
    )
    job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    environment = models.ForeignKey(
        "Environment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="whose connection dbt's profile is made from; none: the project's default environment",
    )
    schema = models.CharField(max_length=100, blank=True, help_text="overrides the environment's schema")
    cause = models.CharField(max_length=255, blank=True, help_text="why it was triggered, as the caller said")
    git_sha = models.CharField(max_length=40, blank=True, help_text="the commit a git project's run executes")
    git_branch = models.CharField(max_length=255, blank=True, help_text="the branch it was resolved from, if any")
    pull_request = models.PositiveIntegerField(null=True, blank=True, help_text="a CI run's pull request number")
    changes = models.JSONField(
        null=True, blank=True, help_text="a CI run's nodes new, modified and removed against the deferred manifest"
    )

    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.QUEUED)
    reason = models.TextField(blank=True, help_text="Why the run is in its state, in words")
    queued_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(
        default=timezone.now, help_text="When its task was last sent to the queue (the reaper may send it again)"
    )
    enqueue_attempts = models.PositiveSmallIntegerField(default=1, help_text="How many times it was sent to the queue")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.SmallIntegerField(null=True, blank=True)

    worker = models.CharField(
        max_length=200, blank=True, help_text="PORTAL_WORKER_NAME of the queue worker that claimed it"
    )
    worker_pid = models.IntegerField(null=True, blank=True, help_text="pid of that worker process (for humans)")
    process_group = models.IntegerField(
        null=True,
        blank=True,
        help_text="dbt's process group id on the worker host; kept on a run the reaper ended elsewhere, so its "
        "worker's next start stops what is left (runs.registry.stop_leftover_dbt)",
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    reaped_at = models.DateTimeField(null=True, blank=True, help_text="when the reaper ended it (worker lost)")
    target_path = models.CharField(max_length=500, blank=True)
    log_path = models.CharField(max_length=500, blank=True)

    nodes_total = models.PositiveIntegerField(default=0)
    nodes_done = models.PositiveIntegerField(default=0)
    nodes_failed = models.PositiveIntegerField(default=0)
    log_lines = models.PositiveIntegerField(default=0)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["-queued_at", "-id"], name="run_recent"),
            models.Index(fields=["project", "-queued_at"], name="run_project_recent"),
            # The list's state filter: its COUNT is an index-only scan instead of a table scan.
            models.Index(fields=["state", "-queued_at", "-id"], name="run_state_recent"),
            models.Index(fields=["state"], name="run_active", condition=Q(state__in=["queued", "starting", "running"])),
            # Mean time to recovery: a job's runs in the order they ended (operations.dashboard).
            models.Index(fields=["job", "finished_at"], name="run_job_finished"),
            # /metrics reads the runs finished since its settled figures' mark, and those not finished.
            models.Index(fields=["finished_at"], name="run_finished"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=RunState.values), name="run_state_valid"),
            models.CheckConstraint(condition=Q(source__in=Source.values), name="run_source_valid"),
            models.CheckConstraint(condition=Q(timeout_seconds__gte=1), name="run_timeout_positive"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(state__in=sorted(FINAL_STATES)),
                name="run_finished_only_when_final",
            ),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.project} {self.title}"

    @property
    def title(self) -> str:
        if self.kind != "dbt":
            return self.kind
        if self.job_id:
            return f"job {self.job.name}" + (" (retry from failure)" if self.retry_of_id else "")
        parts = [self.command]
        if self.select:
            parts.append(f"--select {self.select}")
        if self.exclude:
            parts.append(f"--exclude {self.exclude}")
        if self.full_refresh:
            parts.append("--full-refresh")
        return " ".join(parts)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()

    @property
    def wait_seconds(self) -> float | None:
        start = self.started_at or (None if self.is_final else timezone.now())
        return (start - self.queued_at).total_seconds() if start else None


class RunLogChunk(models.Model):
    """A batch of log lines. The log lives in the database so any web process can serve it
    after the worker (and its disk) are gone."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_chunks")
    first_line = models.PositiveIntegerField()
    line_count = models.PositiveIntegerField()
    text = models.TextField()

    class Meta:
        ordering = ["run", "first_line"]
        constraints = [models.UniqueConstraint(fields=["run", "first_line"], name="runlogchunk_unique_start")]


class NodeStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PASS = "pass", "Pass"
    WARN = "warn", "Warn"
    ERROR = "error", "Error"
    FAIL = "fail", "Fail"
    SKIPPED = "skipped", "Skipped"
    RUNTIME_ERROR = "runtime error", "Runtime error"
    NO_OP = "no-op", "No-op"


FAILED_NODE_STATUSES = frozenset({NodeStatus.ERROR, NodeStatus.FAIL, NodeStatus.RUNTIME_ERROR})
# The results that are a node's history: those of invocations that executed it.
EXECUTED = Q(command__in=sorted(EXECUTING_COMMANDS))


class NodeResultQuerySet(models.QuerySet):
    def executed(self) -> NodeResultQuerySet:
        """Results of invocations that executed their node (dbtlib.commands.EXECUTING_COMMANDS)."""
        return self.filter(EXECUTED)


class NodeResult(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="node_results")
    step = models.PositiveSmallIntegerField(default=1, help_text="the run's step (1 for a run of one command)")
    command = models.CharField(
        max_length=30, blank=True, help_text="the dbt command of the invocation that reported it"
    )
    unique_id = models.CharField(max_length=500)
    name = models.CharField(max_length=300, blank=True)
    resource_type = models.CharField(max_length=30, blank=True)
    status = models.CharField(max_length=20, default=NodeStatus.RUNNING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    execution_time = models.FloatField(null=True, blank=True, help_text="seconds")
    rows_affected = models.BigIntegerField(
        null=True, blank=True, help_text="none for a test: its query's one row is no row it affected"
    )
    failures = models.IntegerField(null=True, blank=True, help_text="a test's failing rows")
    message = models.TextField(blank=True)
    compiled_path = models.CharField(max_length=500, blank=True, help_text="relative to the run's target path")

    objects = NodeResultQuerySet.as_manager()

    class Meta:
        ordering = ["run", "step", "started_at", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "step", "unique_id"], name="noderesult_unique_per_step")]
        indexes = [
            # A node's history, newest first (runs.history).
            models.Index(fields=["unique_id", "-run", "-step"], name="noderesult_history"),
            # The dashboard's failing tests and slowest models over a window of runs.
            models.Index(
                fields=["run"],
                name="noderesult_failing_tests",
                condition=Q(resource_type="test", status__in=sorted(FAILED_NODE_STATUSES)) & EXECUTED,
            ),
            models.Index(
                fields=["run"],
                name="noderesult_model_times",
                include=["unique_id", "name", "execution_time"],
                condition=Q(resource_type="model") & EXECUTED,
            ),
            # /metrics' failures by project and resource type: an index-only scan of the few failed rows.
            models.Index(
                fields=["run", "resource_type"],
                name="noderesult_failed",
                condition=Q(status__in=sorted(FAILED_NODE_STATUSES)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.unique_id}: {self.status}"

    @property
    def is_failure(self) -> bool:
        return self.status in FAILED_NODE_STATUSES


class StepState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class Environment(models.Model):
    """Where a project's runs connect: dbt's target name and the warehouse connection its
    profile is generated from (runs/profiles.py). A blank connection field takes the portal's
    own warehouse value; the password never lives here, only the name of the environment
    variable holding it (or NAME_FILE, a file holding it)."""

    project = models.CharField(max_length=100)
    name = models.CharField(max_length=100, help_text="dev, prod, …")
    target_name = models.CharField(max_length=100, default="dev", help_text="dbt's target.name")
    host = models.CharField(max_length=255, blank=True, help_text="blank: the portal's warehouse")
    port = models.PositiveIntegerField(null=True, blank=True)
    user = models.CharField(max_length=100, blank=True)
    dbname = models.CharField(max_length=100, blank=True)
    schema = models.CharField(max_length=100, blank=True)
    password_env = models.CharField(
        max_length=100, blank=True, help_text="name of the environment variable holding the password (or NAME_FILE)"
    )
    threads = models.PositiveSmallIntegerField(default=4)
    env_vars = models.JSONField(default=dict, blank=True, help_text="extra environment variables for dbt")
    is_default = models.BooleanField(default=False, help_text="the project's environment when none is named")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="environment_unique_name"),
            models.UniqueConstraint(fields=["project"], condition=Q(is_default=True), name="environment_one_default"),
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.name}"


class Job(models.Model):
    """A saved dbt job: ordered steps, as typed (`dbt build --select +fct_users`), run in one
    worker in order; optional cron trigger, whose django-q2 Schedule calls
    runs.jobs.run_scheduled (slots missed while down or disabled are not made up)."""

    project = models.CharField(max_length=100)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="jobs")
    steps = models.JSONField(default=list, help_text='["dbt seed", "dbt build --select +fct_users"]')
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="blank: RUN_DEFAULT_TIMEOUT")
    threads = models.PositiveSmallIntegerField(null=True, blank=True, help_text="overrides the environment's")
    generate_docs = models.BooleanField(default=False, help_text="`dbt docs generate` after the steps")
    run_source_freshness = models.BooleanField(
        default=False, help_text="`dbt source freshness` first; its failure does not stop the job"
    )
    cron = models.CharField(max_length=100, blank=True, help_text="minute hour day month weekday, server time zone")
    schedule_enabled = models.BooleanField(default=False, help_text="whether the cron trigger fires")
    alert_on_warn = models.BooleanField(
        default=False, help_text="a success with warn-severity test failures alerts the on-failure targets"
    )
    triggers_on_pull_request = models.BooleanField(
        default=False,
        help_text="a CI job: runs on each pull request's head commit, into a schema of its own, its steps' "
        "state: selectors compared with the deferring environment's latest manifest",
    )
    deferring_environment = models.ForeignKey(
        Environment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deferring_jobs",
        help_text="a CI job compares with and defers to this environment's latest successful run "
        "(blank: the project's default environment)",
    )
    q_schedule_id = models.IntegerField(null=True, blank=True, help_text="the django-q2 Schedule row")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="job_unique_name")]

    def __str__(self) -> str:
        return f"{self.project}: {self.name}"


class RunStep(models.Model):
    """One step of a job run: its own log section, node results (NodeResult.step), exit code
    and artifacts (RunArtifact.invocation)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    index = models.PositiveSmallIntegerField(help_text="1, 2, … in the order they run")
    name = models.CharField(max_length=2000, help_text="the step as typed")
    command = models.CharField(max_length=30)
    select = models.TextField(blank=True)
    exclude = models.TextField(blank=True)
    vars = models.JSONField(default=dict, blank=True)
    full_refresh = models.BooleanField(default=False)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="its other validated flags (dbtlib.steps.OPTION_NAMES), e.g. selector, fail_fast",
    )
    stops_job = models.BooleanField(default=True, help_text="False for the freshness step, as in dbt Cloud")
    state = models.CharField(max_length=20, choices=StepState.choices, default=StepState.QUEUED)
    exit_code = models.SmallIntegerField(null=True, blank=True)
    invocation = models.PositiveSmallIntegerField(null=True, blank=True, help_text="its artifacts' invocation")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_first_line = models.PositiveIntegerField(null=True, blank=True)
    log_end_line = models.PositiveIntegerField(null=True, blank=True, help_text="one past its last log line")

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="runstep_unique_index")]

    def __str__(self) -> str:
        return f"run #{self.run_id} step {self.index}: {self.name}"


class NotificationTarget(models.Model):
    """Who hears about runs of a project (or all projects when project is empty), or only of
    one job's runs: on failure (failed, error, timed out; and a success with warnings of a job
    that alerts on warn), on success, on recovery (the first success after a failure of the
    same job, or project when the run has no job). Webhook bodies are signed with `secret`,
    kept as it is (it must sign) and shown only once, when the target is made."""

    project = models.CharField(max_length=100, blank=True, help_text="empty = every project")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_targets")
    on_failure = models.BooleanField(default=True)
    on_success = models.BooleanField(default=False)
    on_recovery = models.BooleanField(default=False)
    emails = models.TextField(blank=True, help_text="comma-separated addresses")
    webhook_url = models.URLField(blank=True, max_length=500)
    secret = models.CharField(max_length=200, help_text="HMAC-SHA256 key of the webhook's X-Portal-Signature")
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(emails="") | ~Q(webhook_url=""), name="notificationtarget_has_a_destination"
            )
        ]

    def __str__(self) -> str:
        """The webhook by its host only: str() reaches the audit log and the admin, and the
        path is Slack's/Teams' secret."""
        scope = f"job {self.job}" if self.job_id else (self.project or "all projects")
        return f"{scope} → {', '.join(filter(None, [self.emails, mask_url(self.webhook_url)]))}"

    @property
    def email_list(self) -> list[str]:
        return [address.strip() for address in self.emails.split(",") if address.strip()]


class DeliveryStatus(models.TextChoices):
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


RUN_NOTICE = "run"


class NotificationDelivery(models.Model):
    """One attempt to deliver one notice to one target by one channel: a run's notification
    (`run`, notice "run"), or a notice of a higher layer about one of its rows (`subject`,
    e.g. an SLA miss's "sla.miss" and "sla.recovery", which operations.SlaMiss.deliveries
    reads back). runs.notifications.send sends and records them all."""

    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    notice = models.CharField(max_length=30, default=RUN_NOTICE, help_text="run, or the subject's notice: sla.miss, …")
    subject_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    subject = GenericForeignKey("subject_type", "subject_id")
    target = models.ForeignKey(NotificationTarget, null=True, blank=True, on_delete=models.SET_NULL)
    channel = models.CharField(max_length=10, choices=[("email", "Email"), ("webhook", "Webhook")])
    destination = models.CharField(max_length=1000)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices)
    attempts = models.PositiveSmallIntegerField(default=1)
    response_status = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="notificationdelivery_subject")]
        constraints = [
            models.CheckConstraint(
                condition=Q(run__isnull=False) | Q(subject_type__isnull=False, subject_id__isnull=False),
                name="notificationdelivery_has_a_subject",
            )
        ]


class RunArtifact(models.Model):
    """The index of a run's stored artifacts (ARTIFACT_STORAGE): which files each of its dbt
    invocations left, under which storage key, how large. Pages list a run's artifacts
    from these rows, never from the storage; the latest invocation's file is served."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    invocation = models.PositiveSmallIntegerField(help_text="the run's dbt invocation (1, 2, …) that wrote it")
    name = models.CharField(max_length=500, help_text="relative to dbt's target path; dbt.log for the log")
    key = models.CharField(max_length=1000, help_text="the file's name in the artifact storage")
    size = models.BigIntegerField(help_text="bytes, uncompressed")
    stored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run", "invocation", "name"]
        constraints = [
            models.UniqueConstraint(fields=["run", "invocation", "name"], name="runartifact_unique_per_invocation")
        ]

    def __str__(self) -> str:
        return self.key


class StoredFile(models.Model):
    """A file of the database artifact storage (runs.storage.DatabaseStorage), zlib-compressed."""

    name = models.CharField(max_length=1000, unique=True)
    content = models.BinaryField()
    size = models.BigIntegerField(help_text="bytes, uncompressed")
    modified_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class WorkerQuerySet(models.QuerySet):
    def alive(self, within_seconds: int | None = None) -> WorkerQuerySet:
        """Workers that beat within the last `within_seconds` (default RUN_STALE_AFTER_SECONDS,
        the reaper's own verdict on a run)."""
        return self.filter(_beat_within(within_seconds))

    def with_alive(self, within_seconds: int | None = None) -> WorkerQuerySet:
        """Each worker annotated with `alive` (as in alive())."""
        return self.annotate(alive=ExpressionWrapper(_beat_within(within_seconds), output_field=models.BooleanField()))


def _beat_within(seconds: int | None) -> Q:
    seconds = settings.RUN_STALE_AFTER_SECONDS if seconds is None else seconds
    return Q(heartbeat_at__gte=timezone.now() - timedelta(seconds=seconds))


class Worker(models.Model):
    """A queue cluster, by its PORTAL_WORKER_NAME: its worker processes beat the row every
    RUN_HEARTBEAT_SECONDS (runs/registry.py), so pages, the API and readiness see who is up."""

    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField(help_text="the cluster's supervising process (django-q2's sentinel)")
    started_at = models.DateTimeField(help_text="when that process started beating under this name")
    heartbeat_at = models.DateTimeField()

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hostname}, pid {self.pid})"
