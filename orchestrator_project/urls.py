from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from orchestrator_project.accounts.views import TokenView
from orchestrator_project.outbox.views import ReplayView


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """An unknown API URL (a malformed id, say) answers JSON like the rest of the API, not an HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)


api_v1 = [
    path("auth/token", TokenView.as_view(), name="auth-token"),
    path("events/replay", ReplayView.as_view(), name="events-replay"),
    path("", include("agents.urls")),
    path("", include("tasks.urls")),
    path("", include("workflows.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("monitoring.urls")),
    re_path(r"^api/", api_not_found),
]
