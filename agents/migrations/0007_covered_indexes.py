"""A route's agent is indexed by agent_route_unique, which leads with it: its own index only cost writes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0006_agent_route"),
    ]

    operations = [
        migrations.AlterField(
            model_name="agentroute",
            name="agent",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="routes",
                to="agents.agent",
            ),
        ),
    ]
