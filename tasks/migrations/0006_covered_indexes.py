"""Indexes that only cost writes: a foreign key's own index where a composite index leads with the same
column, and the LIKE index Django adds to a unique CharField (idempotency keys are only ever matched
whole, through the unique index). Every task transition and event row wrote to each of them."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0007_covered_indexes"),
        ("tasks", "0005_task_workflow_step"),
    ]

    operations = [
        migrations.AlterField(
            model_name="task",
            name="assigned_agent",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="tasks",
                to="agents.agent",
            ),
        ),
        migrations.AlterField(
            model_name="taskevent",
            name="task",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="tasks.task",
            ),
        ),
        migrations.RunSQL(
            "DROP INDEX IF EXISTS tasks_task_idempotency_key_35fe0ddc_like",
            reverse_sql="CREATE INDEX IF NOT EXISTS tasks_task_idempotency_key_35fe0ddc_like ON tasks_task (idempotency_key varchar_pattern_ops)",
        ),
    ]
