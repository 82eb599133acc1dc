"""The operator dashboard: a page in the admin's look and the JSON it starts from."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from redis.exceptions import RedisError

from tasks.models import Task

from . import queries, recorder
from .status import system_status

RECENT_TASKS = 50
CHART_SECONDS = 15 * 60


@require_GET
@staff_member_required
@ensure_csrf_cookie  # the page's buttons call the API with the session and this token
def dashboard(request):
    context = {**admin.site.each_context(request), "title": "Dashboard", "chart_minutes": CHART_SECONDS // 60}
    return render(request, "monitoring/dashboard.html", context)


def _rates():
    try:
        rows = recorder.read_rates(CHART_SECONDS)
    except RedisError:
        return None
    return {
        "bucket_seconds": recorder.RATE_BUCKET_SECONDS,
        "buckets": [{"t": start, **counts} for start, counts in rows],
    }


@require_GET
@staff_member_required
def summary(request):
    """Everything the dashboard shows, in one request: it then follows changes over the WebSockets."""
    now = timezone.now()
    status = system_status(now=now)
    recent = Task.objects.order_by("-created_at")[:RECENT_TASKS]
    status.update(
        {
            "recent_tasks": [queries.task_message(task) for task in recent],
            "agent_list": queries.agent_snapshot(),
            "rates": _rates(),
        }
    )
    return JsonResponse(status)
