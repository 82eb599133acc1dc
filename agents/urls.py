from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import AgentViewSet, CapabilityListView

# No trailing slashes and UUID converters: /api/v1/agents/{agent_id}/heartbeat, exactly as in the seed.
router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("agents", AgentViewSet, basename="agent")

urlpatterns = [
    *router.urls,
    path("capabilities", CapabilityListView.as_view(), name="capability-list"),
]
