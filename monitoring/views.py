"""The operator dashboard: a page in the admin's look and the JSON it starts from; and /favicon.ico."""

from functools import wraps

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_safe
from redis.exceptions import RedisError

from orchestrator_project.accounts.roles import is_operator, is_viewer
from tasks.models import Task

from . import queries, recorder
from .status import system_status

RECENT_TASKS = 50
FAVICON = "orchestrator/favicon.svg"  # also linked by templates/admin/base_site.html
CHART_SECONDS = 15 * 60


def viewer_required(view):
    """Viewers, operators and superusers (session login). Anonymous visitors go to the admin's login page;
    anyone else, staff included, is refused: staff status alone gives no role."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not is_viewer(request.user):
            raise PermissionDenied("The dashboard needs the viewers or operators role.")
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@viewer_required
@ensure_csrf_cookie  # the page's buttons call the API with the session and this token
def dashboard(request):
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "chart_minutes": CHART_SECONDS // 60,
        "can_operate": is_operator(request.user),  # viewers get no buttons: the API would refuse them
    }
    return render(request, "monitoring/dashboard.html", context)


@require_safe
def favicon(request):
    """/favicon.ico, which browsers ask for where a page links no icon (the API's pages, say): the site's
    icon. Always the same address, whatever the request says: nothing here can redirect elsewhere."""
    return HttpResponseRedirect(static(FAVICON))


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
@viewer_required
def summary(request):
    """Everything the dashboard shows, in one request: it then follows changes over the WebSockets."""
    now = timezone.now()
    status = system_status(now=now)
    recent = Task.objects.order_by("-created_at")[:RECENT_TASKS]
    status.update(
        {
            "recent_tasks": [queries.task_message(task) for task in recent],
            "agent_list": queries.agent_snapshot(),
            "routing": queries.learned_routes(),
            "rates": _rates(),
        }
    )
    return JsonResponse(status)
