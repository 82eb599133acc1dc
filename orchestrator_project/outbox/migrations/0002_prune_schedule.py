"""The outbox's retention job in beat's schedule (django-celery-beat), hourly; change it in the admin."""

from django.db import migrations
from django.utils import timezone

NAME = "outbox: prune published events past retention"
TASK = "orchestrator_project.outbox.jobs.prune_outbox"
EVERY_SECONDS = 3600


def _tell_running_beat(apps):
    # Historical models skip PeriodicTask.save()'s bookkeeping; a running beat reloads on this row.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    # expire_seconds: a run missed while workers were down is dropped; the next hour's does the work.
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={"task": TASK, "interval": interval, "enabled": True, "expire_seconds": EVERY_SECONDS},
    )
    _tell_running_beat(apps)


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()
    _tell_running_beat(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
