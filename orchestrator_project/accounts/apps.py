from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "orchestrator_project.accounts"
    label = "accounts"
    verbose_name = "API access"

    def ready(self):
        from . import schema  # noqa: F401  (registers the OpenAPI description of Bearer tokens)
