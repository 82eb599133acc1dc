"""Limits that hold under pressure: request rates per credential (atomic, shared through Redis), page
sizes, and the input size cap.

The rate tests hammer one limit from several threads at once, each with its own client and database
connection, as several web processes would; only the total that got through counts.
"""

import json
import threading
import uuid

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from orchestrator_project.pagination import KeysetPagination, StandardPagination
from tasks.models import Task
from tests.security.conftest import bearer_client, make_agent

THREADS = 4
PER_THREAD = 8
LIMIT = 5


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        merged = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": merged}

    return set_rates


def hammer(make_request):
    """THREADS threads, each sending PER_THREAD requests as fast as it can, released together."""
    start = threading.Barrier(THREADS)
    statuses = []
    lock = threading.Lock()

    def run():
        start.wait()
        for _ in range(PER_THREAD):
            status = make_request()
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(statuses) == THREADS * PER_THREAD
    return statuses


def token_attempts(username):
    def attempt():
        client = APIClient()
        body = {"username": username, "password": "wrong"}
        return client.post("/api/v1/auth/token", body, format="json", REMOTE_ADDR="192.0.2.77").status_code

    return attempt


def test_the_token_endpoint_never_lets_more_than_the_rate_through(transactional_db, rates):
    rates(auth=f"{LIMIT}/min")
    statuses = hammer(token_attempts(f"victim-{uuid.uuid4().hex[:8]}"))
    assert statuses.count(401) == LIMIT, statuses
    assert statuses.count(429) == THREADS * PER_THREAD - LIMIT


def test_an_attempt_refused_for_its_address_uses_none_of_its_usernames_budget(db, rates):
    rates(auth=f"{LIMIT}/min")

    def attempt(username, address):
        body = {"username": username, "password": "wrong"}
        return APIClient().post("/api/v1/auth/token", body, format="json", REMOTE_ADDR=address).status_code

    assert [attempt("first", "192.0.2.1") for _ in range(LIMIT)] == [401] * LIMIT
    # The address is spent: these are refused, and must not count against "second"...
    assert [attempt("second", "192.0.2.1") for _ in range(3)] == [429] * 3
    # ...whose full budget is still there from another address.
    assert [attempt("second", "192.0.2.2") for _ in range(LIMIT)] == [401] * LIMIT
    assert attempt("second", "192.0.2.3") == 429


def test_heartbeats_of_one_agent_never_exceed_the_rate(transactional_db, rates):
    # DRF's own throttle let 6 or 7 of these through: its read-decide-write races with itself.
    rates(heartbeat=f"{LIMIT}/min")
    agent = make_agent("hammered")
    other = make_agent("bystander")

    def beat():
        client = bearer_client(agent.token)
        return client.post(f"/api/v1/agents/{agent.pk}/heartbeat", {}, format="json").status_code

    statuses = hammer(beat)
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == THREADS * PER_THREAD - LIMIT
    # Per credential: another agent's budget is untouched.
    response = bearer_client(other.token).post(f"/api/v1/agents/{other.pk}/heartbeat", {}, format="json")
    assert response.status_code == 200


def test_a_throttled_answer_says_when_to_come_back(db, rates):
    rates(heartbeat="1/min")
    agent = make_agent("impatient")
    client = bearer_client(agent.token)
    assert client.post(f"/api/v1/agents/{agent.pk}/heartbeat", {}, format="json").status_code == 200
    response = client.post(f"/api/v1/agents/{agent.pk}/heartbeat", {}, format="json")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["detail"]


# --- Page sizes ----------------------------------------------------------------------------------


def test_both_paginations_cap_pages_at_500():
    assert StandardPagination.max_page_size == KeysetPagination.max_page_size == 500


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/agents"])
def test_a_huge_page_size_is_capped(operator_client, monkeypatch, path):
    # The cap lowered to 20, so that 25 rows show it (500 are as capped, only slower to make).
    monkeypatch.setattr(StandardPagination, "max_page_size", 20)
    monkeypatch.setattr(KeysetPagination, "max_page_size", 20)
    Task.objects.bulk_create([Task(type="t", required_capabilities=["t"]) for _ in range(25)])
    agents = [
        Agent(type="t", name=f"a{i}", endpoint=f"http://127.0.0.1:9/{i}", token_hash=f"{i:064}")
        for i in range(25)
    ]
    Agent.objects.bulk_create(agents)
    response = operator_client.get(f"{path}?page_size=100000")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 20
    assert response.json()["next"]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1e3", "10.5", "", "%00", "+5", "\u0665"])
def test_a_page_size_that_is_not_a_positive_integer_is_a_400(operator_client, value):
    for path in ("/api/v1/tasks", "/api/v1/agents"):
        response = operator_client.get(f"{path}?page_size={value}")
        assert response.status_code == 400, (path, value, response.content)


# --- The input size cap --------------------------------------------------------------------------


def _input_of(total_bytes):
    """An input_data object whose compact JSON is exactly `total_bytes` long."""
    overhead = len(json.dumps({"blob": ""}, separators=(",", ":")))
    return {"blob": "x" * (total_bytes - overhead)}


def test_input_data_up_to_the_cap_is_accepted_and_one_byte_more_is_not(operator_client, settings):
    cap = settings.TASK_MAX_INPUT_BYTES
    assert cap == 1024 * 1024  # the documented default
    at_cap = operator_client.post("/api/v1/tasks", {"type": "t", "input_data": _input_of(cap)}, format="json")
    assert at_cap.status_code == 201, at_cap.content[:200]
    over = operator_client.post(
        "/api/v1/tasks", {"type": "t", "input_data": _input_of(cap + 1)}, format="json"
    )
    assert over.status_code == 400
    assert f"the limit is {cap} bytes" in over.json()["input_data"][0]
    assert Task.objects.count() == 1


def test_the_cap_follows_the_setting_in_bulk_too(operator_client, settings):
    settings.TASK_MAX_INPUT_BYTES = 1000
    small = {"type": "t", "input_data": _input_of(1000)}
    big = {"type": "t", "input_data": _input_of(1001)}
    response = operator_client.post("/api/v1/tasks/bulk", {"tasks": [small, small, big]}, format="json")
    assert response.status_code == 400
    assert "input_data" in response.json()["tasks"]["2"]
    assert not Task.objects.exists()
    assert (
        operator_client.post("/api/v1/tasks/bulk", {"tasks": [small] * 3}, format="json").status_code == 201
    )
