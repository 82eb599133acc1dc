from django.db import models


class AppliedInterval(models.Model):
    """The interval the settings last gave a beat schedule row (monitoring/schedules.py).

    Remembered so that an unchanged setting is not applied again at the next start: an operator's edit of
    the row in the admin sticks until the setting itself changes.
    """

    schedule = models.CharField(max_length=200, primary_key=True, help_text="The PeriodicTask's name.")
    seconds = models.PositiveIntegerField()
    applied_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.schedule}: {self.seconds} s"
