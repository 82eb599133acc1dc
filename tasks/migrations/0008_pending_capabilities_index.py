"""The pending tasks' capability sets, so that a dispatch round can ask cheaply whether any due task is
one an able agent serves (tasks/engine/claim.py _WORTH_A_ROUND_SQL). Partial: only pending,
auto-dispatched tasks have an entry, one per task created or retried. Built concurrently, so that an
upgrade does not hold task writes for the scan of a large table."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0007_task_failover_until"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="task",
            index=models.Index(
                condition=models.Q(("auto_dispatch", True), ("status", "pending")),
                fields=["required_capabilities"],
                name="task_pending_capabilities",
            ),
        ),
    ]
