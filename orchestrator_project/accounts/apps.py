from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "orchestrator_project.accounts"
    label = "accounts"
    verbose_name = "API access"

    def ready(self):
        from . import schema  # noqa: F401  (registers the OpenAPI description of Bearer tokens)
        from .grants import after_migrate

        post_migrate.connect(after_migrate, dispatch_uid="accounts.grant_role_permissions")
