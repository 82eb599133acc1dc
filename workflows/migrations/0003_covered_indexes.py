"""Indexes that only cost writes: a foreign key's own index where a composite index leads with the same
column, and the LIKE index Django adds to a unique CharField (idempotency keys are only ever matched
whole, through the unique index). Every task transition and event row wrote to each of them."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0002_approval_sweep"),
    ]

    operations = [
        migrations.AlterField(
            model_name="steprun",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="workflows.workflowrun",
            ),
        ),
        migrations.AlterField(
            model_name="workflowevent",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="workflows.workflowrun",
            ),
        ),
        migrations.AlterField(
            model_name="workflowrun",
            name="definition",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="workflows.workflowdefinition",
            ),
        ),
        migrations.RunSQL(
            "DROP INDEX IF EXISTS workflows_workflowrun_idempotency_key_a9d1466e_like",
            reverse_sql="CREATE INDEX IF NOT EXISTS workflows_workflowrun_idempotency_key_a9d1466e_like ON workflows_workflowrun (idempotency_key varchar_pattern_ops)",
        ),
    ]
