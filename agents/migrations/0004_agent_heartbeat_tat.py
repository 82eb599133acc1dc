from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_beat_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="agent",
            name="heartbeat_tat",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
