"""The approval sweep's beat schedule, in the database (django-celery-beat) so it shows in the admin."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

NAME = "workflows: apply the default decision of approvals past their due time"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every = getattr(settings, "WORKFLOW_APPROVAL_SWEEP_SECONDS", 5)
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={"task": "workflows.expire_approvals", "interval": interval, "enabled": True, "expire_seconds": every},
    )
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
