from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import (
    DefinitionDetailView,
    DefinitionListView,
    DefinitionVersionsView,
    DefinitionVersionView,
    MapItemListView,
    RunViewSet,
    ValidateView,
)

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("workflow-runs", RunViewSet, basename="workflow-run")

urlpatterns = [
    path("workflows", DefinitionListView.as_view(), name="workflow-list"),
    path("workflows/validate", ValidateView.as_view(), name="workflow-validate"),
    path("workflows/<str:name>", DefinitionDetailView.as_view(), name="workflow-detail"),
    path("workflows/<str:name>/versions", DefinitionVersionsView.as_view(), name="workflow-versions"),
    path(
        "workflows/<str:name>/versions/<int:version>",
        DefinitionVersionView.as_view(),
        name="workflow-version",
    ),
    path(
        "workflow-runs/<uuid:run_id>/steps/<str:step_id>/items",
        MapItemListView.as_view(),
        name="workflow-run-items",
    ),
    *router.urls,
]
