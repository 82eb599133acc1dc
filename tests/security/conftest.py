"""Actors and guards shared by the security suites."""

import ipaddress
import socket

import pytest
from rest_framework.test import APIClient

from tests.agents.conftest import make_agent

LOOPBACK_ONLY = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.fixture
def hermetic_dns(monkeypatch):
    """Only IP literals (in any spelling the C library accepts), `localhost` and the names a test scripts
    (`dns.answers[name] = [...]` or a callable) resolve: no test asks a real name server."""

    real = socket.getaddrinfo

    class Resolver:
        answers = {}
        asked = []

        def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
            name = host.decode() if isinstance(host, bytes) else host
            self.asked.append(name)
            if name in self.answers:
                addresses = self.answers[name]
                if callable(addresses):
                    addresses = addresses()
                return [
                    (
                        socket.AF_INET6 if ":" in address else socket.AF_INET,
                        socket.SOCK_STREAM,
                        socket.IPPROTO_TCP,
                        "",
                        (address, port or 0),
                    )
                    for address in addresses
                ]
            if name == "localhost":
                name = "127.0.0.1"
            # Numeric spellings only (0x7f.1, 2852039166, ::ffff:a9fe:a9fe): the C library parses them
            # the way it would for real, and never asks a name server.
            return real(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    resolver = Resolver()
    resolver.answers = {}
    resolver.asked = []
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


def make_task(status="pending", *, agent=None, attempts=None, **fields):
    """A task in any state, written directly (the engine that would get it there is tested elsewhere)."""
    from datetime import timedelta

    from django.utils import timezone

    from tasks.models import Task

    in_flight = status in ("assigned", "running")
    finished = status in ("completed", "failed", "cancelled")
    fields = {"type": "summarize", "required_capabilities": ["summarize"], **fields}
    return Task.objects.create(
        status=status,
        assigned_agent=agent,
        attempts=attempts if attempts is not None else (1 if agent or finished else 0),
        lease_expires_at=timezone.now() + timedelta(hours=1) if in_flight else None,
        finished_at=timezone.now() if finished else None,
        **fields,
    )


@pytest.fixture
def agent_a(db):
    return make_agent("agent-a")


@pytest.fixture
def agent_b(db):
    return make_agent("agent-b")


def bearer_client(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    client.raw_token = token
    return client
