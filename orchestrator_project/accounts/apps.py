from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "orchestrator_project.accounts"
    label = "accounts"
    verbose_name = "API access"
