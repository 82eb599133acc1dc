"""Beat schedules of the agents app, kept in the database (django-celery-beat) so they show in the admin.

Intervals are read from the settings when the migration runs; change them later in the admin.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

SCHEDULES = [
    # (name, task, interval setting, fallback seconds)
    ("agents: expire stale agents", "agents.jobs.expire_stale_agents", "SWEEP_INTERVAL_SECONDS", 2),
    ("agents: probe agent health", "agents.jobs.probe_agents", "AGENT_PROBE_INTERVAL", 15),
]


def _tell_running_beat(apps):
    # Historical models skip PeriodicTask.save()'s bookkeeping; a running beat reloads on this row.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def create_schedules(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, setting, fallback in SCHEDULES:
        every = getattr(settings, setting, fallback)
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
        # expire_seconds: if workers are down, sweeps queued meanwhile are dropped, not run in a burst.
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "interval": interval, "enabled": True, "expire_seconds": every},
        )
    _tell_running_beat(apps)


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()
    _tell_running_beat(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_agent_probe_heartbeats"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
