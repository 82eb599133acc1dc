"""Register the services named by the seed's configuration (RAG_SERVICE_URL, RULEGEN_SERVICE_URL) as agents.

Run at every start-up, so it is idempotent (an endpoint is one agent, and its credentials are kept)
and a service that is down or misconfigured is logged, never fatal: the orchestrator starts anyway.
"""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand
from rest_framework.exceptions import ValidationError

from agents.serializers import AgentRegistrationSerializer
from agents.services import register_agent
from orchestrator_project.errors import InvalidInput

logger = logging.getLogger("agents.seed")


def seed_services():
    return [
        ("rag_agent", "RAG service", settings.RAG_SERVICE_URL, settings.RAG_SERVICE_CAPABILITIES),
        (
            "rulegen_agent",
            "Rule generation service",
            settings.RULEGEN_SERVICE_URL,
            settings.RULEGEN_SERVICE_CAPABILITIES,
        ),
    ]


class Command(BaseCommand):
    help = "Register the seed's RAG and rule generation services as agents (idempotent)."

    def handle(self, *args, **options):
        for agent_type, name, url, capabilities in seed_services():
            if not url:
                continue
            try:
                agent = self.register(agent_type, name, url, capabilities)
            except ValidationError as exc:
                logger.warning("could not register %s at %s: %s", name, url, exc.detail)
                continue
            except InvalidInput as exc:
                logger.warning("could not register %s at %s: %s", name, url, exc.message)
                continue
            except Exception:
                logger.exception("could not register %s at %s", name, url)
                continue
            self.stdout.write(f"{name}: agent {agent.agent_id} at {agent.endpoint} ({agent.status})")

    def register(self, agent_type, name, url, capabilities):
        body = {"type": agent_type, "name": name, "endpoint": url}
        if capabilities:
            body["capabilities"] = capabilities
        registration = AgentRegistrationSerializer(data=body)
        registration.is_valid(raise_exception=True)
        # These services do not send heartbeats: their health probes stand in for them, so the timeout
        # must outlast a few probe rounds. Their credentials are kept, so a restart changes nothing.
        agent, _, _ = register_agent(
            **registration.validated_data,
            probe_heartbeats=True,
            rotate_credentials=False,
            heartbeat_timeout=max(settings.AGENT_HEARTBEAT_TIMEOUT, 3 * settings.AGENT_PROBE_INTERVAL),
        )
        return agent
