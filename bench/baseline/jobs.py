"""The hand-rolled dispatch's Celery task: read the job, POST it to the agent, store the answer."""

import httpx
from celery import Celery
from django.conf import settings
from django.utils import timezone

from .models import Job

app = Celery("bench_baseline")
app.config_from_object("django.conf:settings", namespace="CELERY")

_client = None


def _http():
    global _client
    if _client is None:  # one per worker process, kept alive like any sensible worker would
        _client = httpx.Client(timeout=30)
    return _client


@app.task(name="bench.baseline.call_agent", ignore_result=True)
def call_agent(job_id):
    job = Job.objects.get(pk=job_id)
    body = {"task_id": str(job.pk), "type": job.type, "input_data": job.input_data, "attempt": 1}
    response = _http().post(f"{settings.AGENT_URL}/execute", json=body)
    response.raise_for_status()
    Job.objects.filter(pk=job_id).update(result=response.json(), done_at=timezone.now())
