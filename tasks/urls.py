from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import UUID_PATTERN, TaskViewSet, execute_task

router = SimpleRouter(trailing_slash=False, use_regex_path=False)
router.register("tasks", TaskViewSet, basename="task")

urlpatterns = [
    path("tasks/<uuid:task_id>/execute", execute_task, name="task-execute"),
    *router.urls,
]

__all__ = ["UUID_PATTERN"]
