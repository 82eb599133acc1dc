"""Capability discovery from an agent's A2A agent card (`{endpoint}/.well-known/agent-card.json`)."""

import re

from django.conf import settings

from orchestrator_project import egress

AGENT_CARD_PATH = "/.well-known/agent-card.json"
# An agent card is a small document; anything bigger is not one.
AGENT_CARD_MAX_BYTES = 1024 * 1024
CAPABILITY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
MAX_CAPABILITIES = 100


class DiscoveryFailed(Exception):
    pass


def capabilities_from_card(card):
    """skills[].id and skills[].tags, in order, without duplicates or values we could not store."""
    skills = card.get("skills") if isinstance(card, dict) else None
    found = []
    for skill in skills if isinstance(skills, list) else []:
        if not isinstance(skill, dict):
            continue
        tags = skill.get("tags")
        for value in [skill.get("id"), *(tags if isinstance(tags, list) else [])]:
            if isinstance(value, str) and CAPABILITY_PATTERN.match(value) and value not in found:
                found.append(value)
    return found[:MAX_CAPABILITIES]


def discover_capabilities(endpoint):
    url = endpoint + AGENT_CARD_PATH
    try:
        response = egress.request_sync(
            "GET",
            url,
            headers={"accept": "application/json"},
            timeout=settings.AGENT_PROBE_TIMEOUT,
            max_bytes=AGENT_CARD_MAX_BYTES,
        )
    except egress.EgressRefused as exc:
        raise DiscoveryFailed(str(exc))
    except Exception as exc:  # connection refused, timeout, oversized body: all mean "no card"
        raise DiscoveryFailed(f"could not fetch {url}: {exc.__class__.__name__}")
    if response.status_code != 200:
        raise DiscoveryFailed(f"{url} answered {response.status_code}")
    try:
        card = response.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise DiscoveryFailed(f"{url} is not valid JSON")
    capabilities = capabilities_from_card(card)
    if not capabilities:
        raise DiscoveryFailed(f"the agent card at {url} lists no skills with usable ids or tags")
    return capabilities
