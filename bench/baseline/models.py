from django.db import models


class Row(models.Model):
    """What the create endpoint inserts: one row per request."""

    type = models.CharField(max_length=100)
    input_data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"row {self.pk}"


class Job(models.Model):
    """The hand-rolled dispatch: a row, then a Celery task that POSTs it to the agent and marks it done."""

    type = models.CharField(max_length=100)
    input_data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True)
    result = models.JSONField(null=True)

    def __str__(self):
        return f"job {self.pk}"
