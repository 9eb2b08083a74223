from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone


class SnapshotOrigin(models.TextChoices):
    RUN = "run", "dbt run"
    UPLOAD = "upload", "Upload"


class SnapshotQuerySet(models.QuerySet):
    def current(self) -> SnapshotQuerySet:
        return self.filter(is_current=True)

    def of_project(self, project: str) -> SnapshotQuerySet:
        return self.filter(project=project)


class SnapshotManager(models.Manager.from_queryset(SnapshotQuerySet)):  # type: ignore[misc]
    def get_queryset(self) -> SnapshotQuerySet:
        # folder_summary, megabytes of JSON at 100,000 nodes, is read by the whole-project page
        # only (a deferred field loads when read): not by every page that shows a snapshot.
        return super().get_queryset().defer("folder_summary")


class Snapshot(models.Model):
    """One ingested manifest. Only a fully ingested one becomes the project's current snapshot."""

    project = models.CharField(max_length=100)
    dbt_version = models.CharField(max_length=40)
    manifest_schema_version = models.PositiveSmallIntegerField()
    generated_at = models.DateTimeField(null=True, blank=True)
    invocation_id = models.CharField(max_length=64, blank=True)
    origin = models.CharField(max_length=10, choices=SnapshotOrigin.choices)
    # No FK: lineage never depends on runs (runs pushes into lineage).
    run_id = models.BigIntegerField(null=True, blank=True)
    ingested_at = models.DateTimeField(auto_now_add=True)
    ingested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ingested_by_label = models.CharField(max_length=150, blank=True, help_text="Who, when not a user (worker)")
    node_count = models.PositiveIntegerField(default=0)
    counts_by_type = models.JSONField(default=dict)
    has_catalog = models.BooleanField(default=False, help_text="its column types come from a catalog")
    catalog_generated_at = models.DateTimeField(
        null=True, blank=True, help_text="when dbt generated that catalog (it may be an earlier run's)"
    )
    folder_summary = models.JSONField(default=list, help_text="[{folder, counts, feeds: {folder: edges}}]")
    is_current = models.BooleanField(default=False)

    objects = SnapshotManager()

    class Meta:
        ordering = ["-ingested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_current=True), name="lineage_one_current_snapshot_per_project"
            )
        ]
        indexes = [models.Index(fields=["project", "-ingested_at"], name="lineage_snapshot_project_idx")]

    def __str__(self) -> str:
        return f"{self.project} snapshot #{self.pk}"

    @property
    def ingested_by_name(self) -> str:
        return self.ingested_by.get_username() if self.ingested_by else self.ingested_by_label


class Catalog(models.Model):
    """A project's latest catalog.json (dbt docs generate), trimmed to its column types: a
    snapshot ingested without a catalog takes its column types from it, so they stay until a
    newer catalog replaces it (runs without docs generation do not blank them)."""

    project = models.CharField(max_length=100, unique=True)
    columns = models.JSONField(
        help_text='{"nodes": {unique_id: {"columns": {name: {name, type, index}}}}, "sources": …}'
    )
    generated_at = models.DateTimeField(help_text="catalog.json's metadata.generated_at (else when it came)")
    run_id = models.BigIntegerField(null=True, blank=True, help_text="the run that generated it; none: an upload")
    stored_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.project} catalog of {self.generated_at:%Y-%m-%d %H:%M}"


class NodeQuerySet(models.QuerySet):
    def counts_by_type(self) -> dict[str, int]:
        rows = self.values("resource_type").annotate(n=Count("id")).order_by("resource_type")
        return {row["resource_type"]: row["n"] for row in rows}


class Node(models.Model):
    """A model, source, seed, snapshot, test, exposure, … of one snapshot."""

    # No foreign key in the database (here and in Edge): PostgreSQL would check each row at the
    # ingest's commit, one by one (about 1 s of a 100,000-node ingest); rows are written only by
    # the ingest, into the snapshot it has just made. No index of its own either: every index
    # of the table begins with the snapshot. Django still cascades.
    snapshot = models.ForeignKey(
        Snapshot, on_delete=models.CASCADE, related_name="nodes", db_constraint=False, db_index=False
    )
    unique_id = models.TextField()
    resource_type = models.CharField(max_length=32)
    name = models.TextField()
    package_name = models.TextField(blank=True)
    path = models.TextField(blank=True)
    original_file_path = models.TextField(blank=True)
    patch_path = models.TextField(blank=True, help_text="The YAML file documenting the node, if any")
    folder = models.TextField(blank=True, help_text="package/directory of original_file_path, for grouping")
    description = models.TextField(blank=True)
    tags = ArrayField(models.TextField(), default=list, blank=True)
    materialization = models.CharField(max_length=64, blank=True)
    relation_name = models.TextField(blank=True)
    columns = models.JSONField(default=list, help_text="[{name, description, data_type}] in manifest order")
    raw_code = models.TextField(blank=True)
    compiled_code = models.TextField(blank=True)
    fqn = ArrayField(models.TextField(), default=list, blank=True)
    config = models.JSONField(default=dict)
    attached_node = models.TextField(blank=True, help_text="For a test: the node it is defined on")
    column_name = models.TextField(blank=True, help_text="For a column test: the column")
    test_name = models.TextField(blank=True, help_text="For a generic test: its test_metadata.name")
    version = models.TextField(blank=True, help_text="For a versioned model: its version")
    details = models.JSONField(
        default=dict,
        help_text="What its kind has of its own, as the manifest has it: an exposure's type, owner, maturity and url; "
        "a metric's type, label, type_params and filter; a semantic model's model, entities, dimensions and "
        "measures; a saved query's query_params and exports; a group's owner; a model's access, group, "
        "latest_version and contract (see dbtlib.manifest._details)",
    )
    group_name = models.TextField(blank=True, help_text="The group it belongs to (config.group), if any")
    # lower(name, path, tags, description) in one column: one LIKE per row is what keeps
    # search fast at 10,000 nodes without pg_trgm (not available everywhere).
    search_text = models.TextField(blank=True)

    objects = NodeQuerySet.as_manager()

    class Meta:
        ordering = ["name", "unique_id"]
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "unique_id"], name="lineage_node_unique_per_snapshot")
        ]
        indexes = [
            models.Index(fields=["snapshot", "resource_type"], name="lineage_node_type_idx"),
            models.Index(fields=["snapshot", "folder"], name="lineage_node_folder_idx"),
            models.Index(fields=["snapshot", "name"], name="lineage_node_name_idx"),
            GinIndex(fields=["tags"], name="lineage_node_tags_gin"),
            # A group's members; partial, so the many nodes without a group cost ingest nothing.
            models.Index(fields=["snapshot", "group_name"], condition=~Q(group_name=""), name="lineage_node_group_idx"),
        ]

    def __str__(self) -> str:
        return self.unique_id


class SearchName(models.Model):
    """The site search's index of node names: one narrow row per node of each project's current
    snapshot, its name in lower case under the C collation. Exact and prefix matches walk its
    btree; a substring is one scan of these short rows, not of the wide node table (pg_trgm
    is not in the embedded PostgreSQL). Kept by lineage.search.index_current()."""

    # No foreign keys in the database (here and in SearchTerm): PostgreSQL would check each of
    # the index's rows at the ingest's commit, one by one (about 8 s of a 100,000-node ingest).
    # Its rows are derived, written and dropped only by index_current(); Django still cascades.
    node = models.OneToOneField(Node, primary_key=True, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    name = models.TextField(db_collation="C")
    is_test = models.BooleanField(default=False, help_text="tests rank after the other nodes")

    class Meta:
        indexes = [models.Index(fields=["is_test", "name"], name="lineage_searchname_name_idx")]


class SearchField(models.IntegerChoices):
    TAG = 1, "tag"  # one row per distinct tag of a snapshot (no node)
    TAGGED = 2, "tagged node"  # one row per distinct tag (lower case), its nodes in `nodes`
    COLUMN = 3, "column"  # one row per distinct column name, its nodes in `nodes`
    DESCRIPTION = 4, "description"  # one row per node with a description (its own and its columns')


class SearchTerm(models.Model):
    """The site search's index of tags, columns and descriptions of the current snapshots
    (kept with SearchName): terms in lower case under the C collation, so one btree answers
    exact and prefix matches in order; descriptions as a `simple` tsvector under GIN."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    # No index of its own: rows go by snapshot (Django's cascade from a node scans, rarely).
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    field = models.PositiveSmallIntegerField(choices=SearchField.choices)
    term = models.TextField(db_collation="C", blank=True)
    node_name = models.TextField(db_collation="C", blank=True, help_text="lower case; a tag row: the tag as written")
    document = SearchVectorField(null=True, blank=True)
    # A tagged or column row's nodes (ids), by lower-case name: one row per tag or column name,
    # not per node and name (100,000 nodes: 465,000 rows, 3 s of the ingest, became a few).
    nodes = ArrayField(models.BigIntegerField(), null=True, blank=True)

    class Meta:
        indexes = [
            # Not over the descriptions (found by their GIN index): 100,000 rows fewer to write.
            models.Index(
                fields=["field", "term", "node_name"],
                name="lineage_searchterm_term_idx",
                condition=~Q(field=SearchField.DESCRIPTION),
            ),
            GinIndex(fields=["document"], name="lineage_searchterm_doc_gin"),
        ]


class Edge(models.Model):
    """parent → child, from the child's depends_on.nodes (dbt's own graph)."""

    snapshot = models.ForeignKey(
        Snapshot, on_delete=models.CASCADE, related_name="edges", db_constraint=False, db_index=False
    )
    parent = models.TextField()
    child = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "parent", "child"], name="lineage_edge_unique_per_snapshot")
        ]
        indexes = [models.Index(fields=["snapshot", "child"], name="lineage_edge_child_idx")]


class NodeStatus(models.Model):
    """Latest run result per (project, unique_id), pushed by runs; survives re-ingests."""

    project = models.CharField(max_length=100)
    unique_id = models.TextField()
    status = models.CharField(max_length=32)
    execution_time = models.FloatField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    run_id = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "unique_id"], name="lineage_status_unique_per_node")]

    def __str__(self) -> str:
        return f"{self.unique_id}: {self.status}"


class FreshnessStatus(models.TextChoices):
    PASS = "pass", "pass"
    WARN = "warn", "warn"
    ERROR = "error", "error"
    RUNTIME_ERROR = "runtime error", "runtime error"


class SourceFreshness(models.Model):
    """One source's freshness as one run's `dbt source freshness` saw it, pushed by runs
    (one row per source per run: the history; lineage.freshness.latest() reads the newest)."""

    project = models.CharField(max_length=100)
    unique_id = models.TextField()
    source = models.TextField(help_text="source_name.table_name")
    status = models.CharField(max_length=16, choices=FreshnessStatus.choices)
    max_loaded_at = models.DateTimeField(null=True, blank=True, help_text="The newest loaded_at_field value")
    snapshotted_at = models.DateTimeField(help_text="When dbt looked")
    age_seconds = models.FloatField(null=True, blank=True, help_text="snapshotted_at − max_loaded_at")
    criteria = models.JSONField(default=dict, help_text="dbt's {warn_after, error_after, filter}")
    warn_after_seconds = models.FloatField(null=True, blank=True)
    error_after_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="A runtime error's message")
    run_id = models.BigIntegerField()  # no FK: lineage never depends on runs

    class Meta:
        ordering = ["-snapshotted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run_id", "unique_id"], name="lineage_freshness_one_per_source_per_run")
        ]
        indexes = [
            models.Index(fields=["project", "unique_id", "-snapshotted_at"], name="lineage_freshness_latest_idx")
        ]

    def __str__(self) -> str:
        return f"{self.unique_id}: {self.status} (run #{self.run_id})"

    def age_now(self, now: datetime | None = None) -> float | None:
        """The newest row's age now, not when dbt looked (the data keeps ageing between
        freshness runs); None when dbt found no newest row."""
        if self.max_loaded_at is None:
            return None
        return ((now or timezone.now()) - self.max_loaded_at).total_seconds()


class ColumnLineage(models.Model):
    """One model's (or snapshot's) columns in one snapshot, read from its compiled SQL by
    lineage/columns.py: each column's upstream (node, column) pairs. Downstream is the
    reverse, found through `upstream_nodes`."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="+")
    unique_id = models.TextField()
    sql_hash = models.CharField(max_length=32, help_text="md5 of its compiled SQL")
    fingerprint = models.CharField(
        max_length=64, help_text="its SQL and its upstream relations' known columns: equal means the same result"
    )
    output_columns = ArrayField(
        models.TextField(), default=list, help_text="what its SQL outputs, in order (a schema for its children)"
    )
    columns = models.JSONField(
        default=list, help_text='[{"name", "upstream": [[unique_id, column]], "resolved", "note"}]'
    )
    upstream_nodes = ArrayField(models.TextField(), default=list, help_text="every node its columns read")
    note = models.TextField(blank=True, help_text="why its SQL could not be read at all ('' when it could)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "unique_id"], name="lineage_columnlineage_unique_per_snapshot")
        ]
        indexes = [GinIndex(fields=["upstream_nodes"], name="lineage_columnlineage_up_gin")]

    def __str__(self) -> str:
        return f"{self.unique_id} columns (snapshot #{self.snapshot_id})"


class ColumnCoverageState(models.TextChoices):
    PENDING = "pending", "being computed"
    DONE = "done", "done"
    FAILED = "failed", "failed"


class ColumnCoverage(models.Model):
    """How much of a snapshot's column lineage was resolved: columns resolved / columns known
    of its models and snapshots, and what the worker did to get there."""

    snapshot = models.OneToOneField(
        Snapshot, primary_key=True, on_delete=models.CASCADE, related_name="column_coverage"
    )
    state = models.CharField(max_length=8, choices=ColumnCoverageState.choices, default=ColumnCoverageState.PENDING)
    resolved = models.PositiveIntegerField(default=0)
    known = models.PositiveIntegerField(default=0)
    recomputed = models.PositiveIntegerField(default=0, help_text="models whose SQL or upstream columns changed")
    copied = models.PositiveIntegerField(default=0, help_text="models taken unchanged from the previous snapshot")
    seconds = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"snapshot #{self.snapshot_id}: {self.resolved}/{self.known} columns resolved"

    @property
    def percent(self) -> float | None:
        return 100 * self.resolved / self.known if self.known else None


class GitProject(models.Model):
    """A dbt project that lives in a git repository (docs/projects.md). Runs are pinned to a
    commit of it (Run.git_sha); each host checks that commit out from its own cache. The
    credential is a secret reference (kernel.secrets): the name of the variable holding an
    HTTPS token or an SSH deploy key on each host, never the secret."""

    name = models.CharField(max_length=100, unique=True, help_text="the id used in URLs and the API")
    repository_url = models.CharField(max_length=1000, help_text="https://…, ssh://…, user@host:path or a local path")
    branch = models.CharField(max_length=255, default="main", help_text="the default branch")
    subdirectory = models.CharField(max_length=500, blank=True, help_text="the dbt project's folder in the repository")
    credential = models.CharField(
        max_length=100, blank=True, help_text="variable holding an HTTPS token or an SSH private key (or NAME_FILE)"
    )
    webhook_secret = models.CharField(
        max_length=200, help_text="verifies the git host's webhooks and signs commit statuses (X-Portal-Signature)"
    )
    status_url = models.CharField(
        max_length=1000, blank=True, help_text="where CI runs post their commit status (a signed webhook)"
    )
    last_sha = models.CharField(max_length=40, blank=True, help_text="the default branch's commit when last resolved")
    last_resolved_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExplorerLayout(models.Model):
    """A snapshot's explorer graph (lineage/explorer.py), laid out by the first process that
    opens it and kept, gzipped, for every other: 3 s of layout at 100,000 nodes is paid once
    per snapshot, not once per web process."""

    snapshot = models.OneToOneField(Snapshot, primary_key=True, on_delete=models.CASCADE, related_name="+")
    version = models.PositiveSmallIntegerField(help_text="lineage.explorer.LAYOUT_VERSION it was made by")
    gzipped = models.BinaryField(help_text="the explorer's JSON, gzipped")

    def __str__(self) -> str:
        return f"explorer layout of snapshot #{self.snapshot_id}"
