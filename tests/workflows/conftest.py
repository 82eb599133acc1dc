"""Fixtures of the workflow tests: the dispatch fixtures of the tasks tests (a real Celery worker,
loopback agents), and helpers to define workflows and wait for runs."""

import pytest

from tests.tasks.conftest import celery_worker_session, fake_agents, register, wait_until, worker  # noqa: F401


@pytest.fixture
def define(operator_client):
    """POST a definition; returns the response's JSON (asserting it was accepted)."""

    def make(name, steps, **spec):
        response = operator_client.post(
            "/api/v1/workflows", {"name": name, "spec": {"steps": steps, **spec}}, format="json"
        )
        assert response.status_code in (200, 201), response.json()
        return response.json()

    return make
