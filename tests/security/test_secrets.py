"""No password, token, agent token or signing secret appears in the logs or in any API answer after the one
that created it.

One flow goes through every place a secret passes: a token issued for a password (and refused, and
throttled), an agent registered (and re-registered: fresh credentials), heartbeats with right and wrong
tokens, tasks dispatched with signed requests, a result reported with the agent's token, an agent error,
a failure notified to the notifier with its own signing secret, metrics scraped with METRICS_TOKEN.
Everything logged meanwhile, at every level and by every logger (the worker's included), is rendered the
way production renders it (JSON with all extras) and searched for each secret.
"""

import base64
import json
import logging
import secrets

import pytest
from rest_framework.test import APIClient

from agents.models import Agent
from orchestrator_project.logging import JsonFormatter, PlainFormatter
from tasks.models import Task
from tests.actors import PASSWORD, make_user
from tests.security.conftest import bearer_client
from tests.security.test_ssrf import RecordingServer
from tests.tasks import conftest as engine
from tests.tasks.conftest import wait_until

celery_worker_session = engine.celery_worker_session
worker = engine.worker
fake_agents = engine.fake_agents


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []
        self.formatters = [JsonFormatter(), PlainFormatter()]

    def emit(self, record):
        self.lines.extend(formatter.format(record) for formatter in self.formatters)


@pytest.fixture
def logs():
    """Every record of every logger, at DEBUG and unfiltered, for the duration of the test."""
    capture = Capture()
    root = logging.getLogger()
    loggers = [root] + [
        item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    # Filters too: Celery's lines per job, left out of an operator's log unless LOG_LEVEL=DEBUG, carry
    # a job's arguments (a notification's payload, say), so they are searched like the rest.
    filters = {logger: logger.filters for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG if logger is root else logging.NOTSET)
        logger.filters = []
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    root.addHandler(capture)
    yield capture
    root.removeHandler(capture)
    logging.disable(disabled)
    for logger, level in levels.items():
        logger.setLevel(level)
        logger.filters = filters[logger]


@pytest.fixture
def notifier():
    server = RecordingServer({"/": (200, {}, b"")})
    yield server
    server.close()


def forms_of(secret):
    """The secret and, for a Standard Webhooks secret, its key part without the prefix."""
    found = {secret}
    if secret.startswith("whsec_"):
        found.add(secret.removeprefix("whsec_"))
        found.add(base64.b64decode(secret.removeprefix("whsec_")).hex())
    return found


def test_no_secret_reaches_the_logs_in_a_full_flow(worker, settings, logs, fake_agents, notifier):
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    settings.METRICS_TOKEN = secrets.token_urlsafe(32)
    settings.NOTIFIER_SIGNING_SECRET = secrets.token_urlsafe(32)
    settings.NOTIFIER_SERVICE_URL = notifier.url
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    make_user("olga-operator", group="operators")
    anonymous = APIClient()

    # A token for a password; a wrong password; a throttled guesser.
    issued = anonymous.post(
        "/api/v1/auth/token", {"username": "olga-operator", "password": PASSWORD}, format="json"
    )
    assert issued.status_code == 201
    user_token = issued.json()["token"]
    for _ in range(3):
        anonymous.post(
            "/api/v1/auth/token", {"username": "olga-operator", "password": PASSWORD[::-1]}, format="json"
        )
    assert (
        anonymous.post(
            "/api/v1/auth/token", {"username": "x", "password": PASSWORD}, format="json"
        ).status_code
        == 429
    )
    operator = bearer_client(user_token)

    # An agent, registered twice (fresh credentials the second time).
    behaviours = iter(
        [
            (202, {"accepted": True}),
            (500, {"error": "agent exploded"}),
            (401, {"error": "bad signature"}),
        ]
    )
    fake = fake_agents(lambda call: next(behaviours))
    body = {"type": "rag_agent", "name": "keeper", "endpoint": fake.url, "capabilities": ["summarize"]}
    first = operator.post("/api/v1/agents", body, format="json").json()
    again = operator.post("/api/v1/agents", body, format="json").json()
    fake.signing_secret = again["signing_secret"]
    agent_id = again["agent_id"]
    agent = bearer_client(again["token"])
    assert (
        agent.post(f"/api/v1/agents/{agent_id}/heartbeat", {"current_load": 0}, format="json").status_code
        == 200
    )
    assert bearer_client(first["token"]).post(f"/api/v1/agents/{agent_id}/heartbeat").status_code == 401
    assert bearer_client("aoa_" + "x" * 43).post(f"/api/v1/agents/{agent_id}/heartbeat").status_code == 401

    # Signed dispatch: one task accepted with 202 and reported through the callback with the agent's token.
    accepted = operator.post("/api/v1/tasks", {"type": "summarize", "max_retries": 0}, format="json").json()
    fake.wait_for_calls(1)
    callback = fake.calls[0].body["callback_url"].split("8006", 1)[-1].split("/api", 1)[1]
    report = agent.post(f"/api{callback}", {"status": "completed", "result": {"ok": 1}}, format="json")
    assert report.status_code == 200, report.content
    # An agent error (no retries left: the notifier hears of the failure), then an agent refusal.
    failing = operator.post("/api/v1/tasks", {"type": "summarize", "max_retries": 0}, format="json").json()
    wait_until(lambda: Task.objects.filter(task_id=failing["task_id"], status="failed").exists())
    refused = operator.post("/api/v1/tasks", {"type": "summarize", "max_retries": 0}, format="json").json()
    wait_until(lambda: Task.objects.filter(task_id=refused["task_id"], status="failed").exists())
    assert all(call.signature_valid for call in fake.calls)
    assert operator.post(f"/api/v1/agents/{agent_id}/drain").status_code == 200
    wait_until(lambda: len(notifier.requests) >= 2, message="notifications")

    # Metrics, with the right and a wrong token.
    scraper = APIClient(REMOTE_ADDR="192.0.2.1")
    assert scraper.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").status_code == 200
    assert (
        scraper.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN[::-1]}").status_code
        == 403
    )

    secrets_seen = {
        "password": PASSWORD,
        "user token": user_token,
        "first agent token": first["token"],
        "agent token": again["token"],
        "first signing secret": first["signing_secret"],
        "signing secret": again["signing_secret"],
        "SECRET_KEY": settings.SECRET_KEY,
        "METRICS_TOKEN": settings.METRICS_TOKEN,
        "NOTIFIER_SIGNING_SECRET": settings.NOTIFIER_SIGNING_SECRET,
    }
    text = "\n".join(logs.lines)
    # The capture really saw the flow: the requests, the agent's id and the tasks.
    assert '"POST /api/v1/auth/token" 201' in text and agent_id in text and failing["task_id"] in text
    leaked = [name for name, secret in secrets_seen.items() for form in forms_of(secret) if form in text]
    assert leaked == []
    assert Task.objects.get(task_id=accepted["task_id"]).status == "completed"


@pytest.fixture
def registered(operator_client):
    body = {
        "type": "rag_agent",
        "name": "quiet",
        "endpoint": "http://127.0.0.1:9/quiet",
        "capabilities": ["c"],
    }
    created = operator_client.post("/api/v1/agents", body, format="json").json()
    return created


def _no_secret(text, created):
    for name in ("token", "signing_secret"):
        for form in forms_of(created[name]):
            assert form not in text, name
    stored = Agent.objects.get(pk=created["agent_id"])
    assert stored.token_hash not in text


API_READS = [
    "/api/v1/agents/{id}",
    "/api/v1/agents",
    "/api/v1/agents?search=quiet",
    "/api/v1/capabilities",
    "/status",
]


def test_no_api_answer_after_registration_shows_the_agents_credentials(
    registered, operator_client, viewer_client, superuser_client
):
    assert registered["token"].startswith("aoa_") and registered["signing_secret"].startswith("whsec_")
    agent = bearer_client(registered["token"])
    for client in (operator_client, viewer_client, superuser_client):
        for path in API_READS:
            response = client.get(path.format(id=registered["agent_id"]))
            assert response.status_code == 200, path
            _no_secret(response.content.decode(), registered)
            assert (
                '"token"' not in response.content.decode()
                and "signing_secret" not in response.content.decode()
            )
    own = agent.get(f"/api/v1/agents/{registered['agent_id']}")
    assert own.status_code == 200
    _no_secret(own.content.decode(), registered)
    beat = agent.post(f"/api/v1/agents/{registered['agent_id']}/heartbeat", {}, format="json")
    _no_secret(beat.content.decode(), registered)


def test_no_page_of_the_admin_or_dashboard_shows_them_either(registered, superuser):
    client = APIClient()
    client.force_login(superuser)
    agent_id = registered["agent_id"]
    for path in (
        "/admin/agents/agent/",
        f"/admin/agents/agent/{agent_id}/change/",
        f"/admin/agents/agent/?q={agent_id}",
        "/admin/accounts/apitoken/",
        "/dashboard/",
        "/dashboard/api/summary",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        _no_secret(response.content.decode(), registered)


def test_a_user_token_is_shown_once_and_stored_only_as_a_hash(operator_client, superuser):
    from orchestrator_project.accounts.models import ApiToken

    raw = operator_client.raw_token
    token = ApiToken.objects.get(user__username="olivia-operator")
    assert raw not in json.dumps(list(ApiToken.objects.values()), default=str)
    client = APIClient()
    client.force_login(superuser)
    for path in ("/admin/accounts/apitoken/", f"/admin/accounts/apitoken/{token.pk}/change/"):
        page = client.get(path).content.decode()
        assert raw not in page and token.key_hash not in page
        assert token.prefix in page  # what an operator recognises a token by
