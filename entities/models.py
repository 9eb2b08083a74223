from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dbtlib.errors import DbtInputError
from dbtlib.selectors import check_selector
from entities.router import ServingView
from entities.rules.rulesets import dependents

ENTITY_NAME = r"^[a-z][a-z0-9_]{0,40}$"


def validate_dbt_selector(value: str) -> None:
    """The selector becomes dbt's argv: the runs syntax check (no options, no shell characters)."""
    try:
        check_selector("dbt_selector", value)
    except DbtInputError as error:
        raise ValidationError(error.message) from error


class Mode(models.TextChoices):
    RULES = "rules", "Rules"
    SHADOW = "shadow", "Shadow"
    CANARY = "canary", "Canary"
    DBT = "dbt", "dbt"


# Modes whose refresh runs each engine; and those that write a parity report.
RUNS_RULES = frozenset({Mode.RULES, Mode.SHADOW, Mode.CANARY})
RUNS_DBT = frozenset({Mode.SHADOW, Mode.CANARY, Mode.DBT})
WRITES_PARITY = frozenset({Mode.SHADOW, Mode.CANARY})
# Modes that serve dbt rows to consumers: switching to them passes the parity gate.
PARITY_GATED = frozenset({Mode.CANARY, Mode.DBT})


def mode_label(mode: str, canary_percent: int | None) -> str:
    return f"canary {canary_percent}%" if mode == Mode.CANARY else Mode(mode).label


def _canary_percent_fits_mode(prefix: str = "") -> Q:
    """canary needs 0 < percent < 100; every other mode has no percent."""
    mode, percent = f"{prefix}mode", f"{prefix}canary_percent"
    return Q(**{mode: Mode.CANARY, f"{percent}__gt": 0, f"{percent}__lt": 100}) | (
        ~Q(**{mode: Mode.CANARY}) & Q(**{f"{percent}__isnull": True})
    )


class EntityType(models.Model):
    name = models.CharField(
        max_length=41,
        unique=True,
        validators=[RegexValidator(ENTITY_NAME, "lower-case letters, digits and _; starts with a letter")],
        help_text="Also names rules_engine.<name>, core.fct_<name> and serving.<name>",
    )
    description = models.TextField(blank=True)
    dbt_project = models.CharField(max_length=100, help_text="Folder name under dbt_projects/")
    dbt_selector = models.CharField(
        max_length=200, validators=[validate_dbt_selector], help_text="What a refresh builds, e.g. +fct_users"
    )
    key_column = models.CharField(max_length=63)
    serving_view = models.CharField(max_length=130, help_text="The view consumers read")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.RULES)
    canary_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Share of keys served by dbt in canary mode",
    )
    parity_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("100.00"),
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Lowest parity % at which canary or dbt may be approved",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_entity_types"
    )
    mode_changed_at = models.DateTimeField(null=True, blank=True)
    mode_version = models.PositiveIntegerField(
        default=0, help_text="Counts applied mode changes: a request made before the latest one is stale"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(name__regex=ENTITY_NAME), name="entitytype_name_identifier"),
            models.CheckConstraint(condition=Q(mode__in=Mode.values), name="entitytype_mode_valid"),
            models.CheckConstraint(
                condition=Q(canary_percent__isnull=True) | Q(canary_percent__gte=0, canary_percent__lte=100),
                name="entitytype_canary_percent_0_100",
            ),
            models.CheckConstraint(condition=_canary_percent_fits_mode(), name="entitytype_canary_percent_fits_mode"),
            models.CheckConstraint(
                condition=Q(parity_threshold__gte=0, parity_threshold__lte=100),
                name="entitytype_parity_threshold_0_100",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def mode_label(self) -> str:
        return mode_label(self.mode, self.canary_percent)

    @property
    def rules_relation(self) -> tuple[str, str]:
        return ("rules_engine", self.name)

    @property
    def dbt_relation(self) -> tuple[str, str]:
        return ("core", f"fct_{self.name}")

    @property
    def serving_relation(self) -> tuple[str, str]:
        schema, _, view = self.serving_view.partition(".")
        return (schema, view)

    @property
    def dbt_exclude(self) -> str:
        """The models of entities downstream of this one, with their tests. A test reading this
        entity's model and a downstream one (every application owner exists in fct_users) runs
        with the downstream refresh: refreshing users never needs fct_applications built."""
        return " ".join(f"fct_{name}+" for name in dependents(self.name))

    @property
    def dbt_command(self) -> str:
        exclude = f" --exclude {self.dbt_exclude}" if self.dbt_exclude else ""
        return f"dbt build --select {self.dbt_selector}{exclude}"

    @property
    def refresh_steps(self) -> str:
        """What a refresh does in the current mode, as a sentence fragment."""
        rules = f"runs the rules engine (raw.* into rules_engine.{self.name})"
        dbt = f"runs {self.dbt_command} (into core.fct_{self.name})"
        if self.mode == Mode.RULES:
            return rules
        if self.mode == Mode.DBT:
            return dbt
        return f"{rules}, {dbt}, then writes a parity report"

    @property
    def serving_view_spec(self) -> ServingView:
        """What entities.router generates serving.<name> from, in the current mode."""
        return ServingView(self.name, self.key_column, self.serving_relation, self.mode, self.canary_percent)

    def latest_parity(self) -> ParityReport | None:
        return self.parity_reports.order_by("-created_at", "-id").first()

    def parity_passes(self, report: ParityReport | None) -> bool:
        """`report` exists and is at or above this entity's parity threshold."""
        return report is not None and report.meets(self.parity_threshold)

    def gate_allows(self, mode: str, report: ParityReport | None = None) -> bool:
        """The parity gate: a switch to canary or dbt needs `report`, the latest parity report,
        at or above the threshold; rules and shadow need none. Approving through a closed gate
        takes an admin's recorded override reason."""
        return mode not in PARITY_GATED or self.parity_passes(report)


class ModeChangeKind(models.TextChoices):
    APPROVAL = "approval", "Approved request"
    ROLLBACK = "rollback", "Break-glass rollback"


class ModeChange(models.Model):
    """One applied mode change: the entity's mode history."""

    entity = models.ForeignKey(EntityType, on_delete=models.CASCADE, related_name="mode_changes")
    kind = models.CharField(max_length=10, choices=ModeChangeKind.choices)
    from_mode = models.CharField(max_length=10, choices=Mode.choices)
    from_canary_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    to_mode = models.CharField(max_length=10, choices=Mode.choices)
    to_canary_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    request = models.OneToOneField(
        "ModeChangeRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="applied_change"
    )
    reason = models.TextField()
    view_sql = models.TextField(help_text="The serving view's definition as applied")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def from_label(self) -> str:
        return mode_label(self.from_mode, self.from_canary_percent)

    @property
    def to_label(self) -> str:
        return mode_label(self.to_mode, self.to_canary_percent)


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ModeChangeRequestQuerySet(models.QuerySet):
    def pending(self) -> ModeChangeRequestQuerySet:
        return self.filter(status=RequestStatus.PENDING)


class ModeChangeRequest(models.Model):
    """Four eyes: requested by one person, decided by another (a CHECK makes sure)."""

    entity = models.ForeignKey(EntityType, on_delete=models.CASCADE, related_name="mode_requests")
    # The mode the request was made from: approving it when the entity has moved on is refused.
    from_mode = models.CharField(max_length=10, choices=Mode.choices)
    from_canary_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    # The entity's mode_version then: a mode change since (even one back to from_mode) makes it stale.
    from_mode_version = models.PositiveIntegerField(default=0)
    mode = models.CharField(max_length=10, choices=Mode.choices)
    canary_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    parity_report = models.ForeignKey(
        "ParityReport",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The latest parity report when the request was approved",
    )
    parity_override_reason = models.TextField(blank=True, help_text="Admin's reason for approving below threshold")

    objects = ModeChangeRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["status"], name="modereq_pending", condition=Q(status=RequestStatus.PENDING)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="modereq_no_self_decision",
            ),
            models.CheckConstraint(condition=Q(status__in=RequestStatus.values), name="modereq_status_valid"),
            # Pending: undecided. Withdrawn: closed by its requester (so no decider). Else decided.
            models.CheckConstraint(
                condition=Q(status=RequestStatus.PENDING, decided_by__isnull=True, decided_at__isnull=True)
                | Q(status=RequestStatus.WITHDRAWN, decided_by__isnull=True, decided_at__isnull=False)
                | Q(
                    status__in=[RequestStatus.APPROVED, RequestStatus.REJECTED],
                    decided_by__isnull=False,
                    decided_at__isnull=False,
                ),
                name="modereq_decision_fits_status",
            ),
            models.CheckConstraint(condition=_canary_percent_fits_mode(), name="modereq_canary_percent_fits_mode"),
            models.CheckConstraint(
                condition=_canary_percent_fits_mode("from_"), name="modereq_from_canary_percent_fits_mode"
            ),
            models.CheckConstraint(
                condition=~(Q(mode=F("from_mode")) & ~Q(mode=Mode.CANARY))
                & ~(Q(mode=Mode.CANARY, from_mode=Mode.CANARY) & Q(canary_percent=F("from_canary_percent"))),
                name="modereq_changes_something",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="modereq_reason_given"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.entity}: {self.from_label} → {self.to_label}"

    @property
    def from_label(self) -> str:
        return mode_label(self.from_mode, self.from_canary_percent)

    @property
    def to_label(self) -> str:
        return mode_label(self.mode, self.canary_percent)

    @property
    def is_pending(self) -> bool:
        return self.status == RequestStatus.PENDING

    def decide(self, status: str, actor, comment: str) -> None:
        """Record the decision; the caller holds the locks and has checked who may decide.

        A withdrawal is closed by the requester: it has a time and a comment, no decider."""
        self.status = status
        self.decided_by = None if status == RequestStatus.WITHDRAWN else actor
        self.decided_at = timezone.now()
        self.decision_comment = comment
        self.save()

    @property
    def is_stale(self) -> bool:
        """Pending, but the entity's mode has changed since the request was made (even if it
        has come back to the mode the request was made from)."""
        return self.is_pending and self.entity.mode_version != self.from_mode_version


class ParityReport(models.Model):
    """Rules output vs dbt output, compared column by column inside the warehouse."""

    entity = models.ForeignKey(EntityType, on_delete=models.CASCADE, related_name="parity_reports")
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    rules_rows = models.BigIntegerField()
    dbt_rows = models.BigIntegerField()
    matching_rows = models.BigIntegerField()
    only_in_rules = models.BigIntegerField()
    only_in_dbt = models.BigIntegerField()
    mismatched_rows = models.BigIntegerField(help_text="Rows on both sides with at least one differing column")
    column_differences = models.JSONField(default=dict, help_text="column -> rows where it differs")
    sample_keys = models.JSONField(default=dict, help_text="Up to 50 keys per category")
    seconds = models.FloatField()
    inputs = models.JSONField(
        default=dict, help_text="Fingerprint of the raw tables, dbt project and rule set it was computed from"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["entity", "-created_at"], name="parity_entity_recent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    rules_rows__gte=0,
                    dbt_rows__gte=0,
                    matching_rows__gte=0,
                    only_in_rules__gte=0,
                    only_in_dbt__gte=0,
                    mismatched_rows__gte=0,
                ),
                name="parity_counts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"parity report #{self.pk} ({self.entity}, {self.percent_display}%)"

    @property
    def compared_rows(self) -> int:
        return self.matching_rows + self.mismatched_rows + self.only_in_rules + self.only_in_dbt

    @property
    def percent(self) -> Decimal:
        """Share of keys (on either side) whose rows are identical; exact, not rounded."""
        if not self.compared_rows:
            return Decimal(100)
        return Decimal(self.matching_rows * 100) / Decimal(self.compared_rows)

    @property
    def percent_display(self) -> str:
        """Two decimals, rounded down: 99.999% never reads as 100.00%."""
        return str(self.percent.quantize(Decimal("0.01"), rounding=ROUND_FLOOR))

    def meets(self, threshold: Decimal) -> bool:
        return self.matching_rows * 100 >= threshold * self.compared_rows
