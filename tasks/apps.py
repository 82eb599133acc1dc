from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Tasks"

    def ready(self):
        # The agents app announces what happens to agents; the engine acts on it. agents never
        # imports tasks.
        from agents import signals

        from .engine import handback, wake

        signals.work_lost.connect(handback.on_work_lost)
        signals.capacity_freed.connect(wake.on_capacity_freed)
