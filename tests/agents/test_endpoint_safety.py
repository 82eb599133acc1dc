"""Registration refuses endpoints the orchestrator must never call (SSRF)."""

import ipaddress

import pytest

from agents.models import Agent

URL = "/api/v1/agents"

REFUSED = [
    "http://169.254.169.254/latest",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",
    "http://0251.0376.0251.0376/",
    "http://0.0.0.0:8000",
    "http://[::]:8000",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://224.0.0.1/",
    "http://user:pw@127.0.0.1:9",
    "ftp://127.0.0.1/agent",
    "file:///etc/passwd",
    "http://no-such-host.invalid/",
    "http:///no-host",
]


@pytest.mark.parametrize("endpoint", REFUSED)
def test_a_dangerous_endpoint_is_refused_with_an_endpoint_error(operator_client, endpoint):
    response = operator_client.post(
        URL, {"type": "t", "name": "n", "endpoint": endpoint, "capabilities": ["c"]}, format="json"
    )

    assert response.status_code == 400
    assert "endpoint" in response.json()
    assert not Agent.objects.exists()


def test_loopback_is_refused_where_only_private_networks_are_allowed(operator_client, settings):
    settings.AGENT_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fc00::/7")]

    response = operator_client.post(
        URL,
        {"type": "t", "name": "n", "endpoint": "http://127.0.0.1:9", "capabilities": ["c"]},
        format="json",
    )

    assert response.status_code == 400
    assert "AGENT_ALLOWED_NETWORKS" in response.json()["endpoint"][0]


def test_an_allowed_private_address_is_accepted(operator_client, settings):
    settings.AGENT_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]

    response = operator_client.post(
        URL,
        {"type": "t", "name": "n", "endpoint": "http://10.1.2.3:8000", "capabilities": ["c"]},
        format="json",
    )

    assert response.status_code == 201
