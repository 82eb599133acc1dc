from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "orchestrator_project.outbox"
    label = "outbox"
    verbose_name = "Event streaming"
