"""Liveness: answers without touching any dependency, so a slow database never restarts the pod."""

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def health(request):
    return JsonResponse({"status": "healthy", "service": "agent-orchestrator", "version": settings.VERSION})
