from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from . import consumers
from .middleware import BearerTokenMiddleware, SameOriginValidator

websocket_urlpatterns = [
    path("ws/tasks/", consumers.TaskStatusConsumer.as_asgi()),
    path("ws/agents/", consumers.AgentStatusConsumer.as_asgi()),
    path("ws/workflow-runs/", consumers.WorkflowRunConsumer.as_asgi()),
]

# Outermost first: the origin is checked before any database work, the bearer token after the session
# so that it wins when both are present.
websocket_application = SameOriginValidator(
    AuthMiddlewareStack(BearerTokenMiddleware(URLRouter(websocket_urlpatterns)))
)
