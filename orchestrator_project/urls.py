from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from orchestrator_project.accounts.views import TokenView

admin.site.site_header = "Agent Orchestrator"
admin.site.site_title = "Agent Orchestrator"
admin.site.index_title = "Operations"

api_v1 = [
    path("auth/token", TokenView.as_view(), name="auth-token"),
    path("", include("agents.urls")),
    path("", include("tasks.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
    path("", include("monitoring.urls")),
]
