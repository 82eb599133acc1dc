"""A prompt failover's time limit: until then a retried task goes only to agents it has not tried
(tasks/engine/outcomes.py, TASK_FAILOVER_ATTEMPTS). Nullable: adding it rewrites no rows."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0006_covered_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="task",
            name="failover_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
