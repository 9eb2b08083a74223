"""Each node result names the dbt command of the invocation that reported it, so history,
flaky flags, latest results and durations count only invocations that executed nodes (a
docs generate step reports every node it compiled as `success` in a near-zero time).

Results stored before: the command of their step, else their run's; a run of another kind
(it invokes dbt through RunContext.dbt) had only entity refreshes, which build. A test's
rows_affected (the one row of its query, not a row it affected) is cleared: its failing rows
are `failures`."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0014_metrics_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="noderesult",
            name="noderesult_failing_tests",
        ),
        migrations.RemoveIndex(
            model_name="noderesult",
            name="noderesult_model_times",
        ),
        migrations.AddField(
            model_name="noderesult",
            name="command",
            field=models.CharField(
                blank=True,
                help_text="the dbt command of the invocation that reported it",
                max_length=30,
            ),
        ),
        migrations.AlterField(
            model_name="noderesult",
            name="failures",
            field=models.IntegerField(blank=True, help_text="a test's failing rows", null=True),
        ),
        migrations.AlterField(
            model_name="noderesult",
            name="rows_affected",
            field=models.BigIntegerField(
                blank=True, help_text="none for a test: its query's one row is no row it affected", null=True
            ),
        ),
        migrations.AddIndex(
            model_name="noderesult",
            index=models.Index(
                condition=models.Q(
                    ("resource_type", "test"),
                    ("status__in", ["error", "fail", "runtime error"]),
                    ("command__in", ["build", "run", "seed", "snapshot", "test"]),
                ),
                fields=["run"],
                name="noderesult_failing_tests",
            ),
        ),
        migrations.AddIndex(
            model_name="noderesult",
            index=models.Index(
                condition=models.Q(
                    ("resource_type", "model"), ("command__in", ["build", "run", "seed", "snapshot", "test"])
                ),
                fields=["run"],
                include=("unique_id", "name", "execution_time"),
                name="noderesult_model_times",
            ),
        ),
        # Data last: no schema change may follow the updates in this transaction (PostgreSQL
        # refuses DDL on a table with pending deferred-constraint events).
        migrations.RunSQL(
            """
            UPDATE runs_noderesult AS n
            SET command = COALESCE(
                (SELECT s.command FROM runs_runstep AS s WHERE s.run_id = n.run_id AND s.index = n.step),
                CASE WHEN r.kind = 'dbt' THEN r.command ELSE 'build' END
            )
            FROM runs_run AS r
            WHERE r.id = n.run_id
            """,
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "UPDATE runs_noderesult SET rows_affected = NULL WHERE resource_type = 'test'", migrations.RunSQL.noop
        ),
    ]
