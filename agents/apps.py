from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self):
        from orchestrator_project.accounts.authentication import register_token_resolver

        from .authentication import resolve_agent_token
        from .models import AGENT_TOKEN_PREFIX

        register_token_resolver(AGENT_TOKEN_PREFIX, resolve_agent_token)
