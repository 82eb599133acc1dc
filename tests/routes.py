"""What the adaptive strategy learned of an agent, written directly (the learning itself is tested in
tests/tasks/test_routing_model.py)."""

from django.utils import timezone

from agents.models import AgentRoute


def learned(agent, latency_ms, success_rate=1.0, *, samples=100, capability="summarize", at=None):
    return AgentRoute.objects.create(
        agent=agent,
        capability=capability,
        latency_ms=latency_ms,
        success_rate=success_rate,
        samples=samples,
        updated_at=at or timezone.now(),
    )
