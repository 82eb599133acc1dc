from django.urls import path

from . import health, metrics, status, views

urlpatterns = [
    path("health", health.health, name="health"),
    path("health/detailed", health.health_detailed, name="health-detailed"),
    path("metrics", metrics.metrics, name="metrics"),
    path("status", status.StatusView.as_view(), name="status"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/api/summary", views.summary, name="dashboard-summary"),
    path("favicon.ico", views.favicon, name="favicon"),
]
