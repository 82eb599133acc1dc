import base64
import hashlib
import json

import pytest

from agents import services
from monitoring.notifications import notify
from monitoring.notifier import signing_key
from orchestrator_project import celery_app, signing


@pytest.fixture
def eager_celery():
    """Jobs run in the test's thread, retries included (Celery does not wait out countdowns eagerly)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def notifier(fake_agent, settings):
    server = fake_agent({"/notify": (204, b"")})
    settings.NOTIFIER_SERVICE_URL = f"{server.url}/notify"
    settings.NOTIFIER_SIGNING_SECRET = signing.new_secret()
    return server


def test_a_status_change_is_sent_signed_to_the_notifier(
    alice, notifier, settings, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.drain(agent_id=alice.pk)

    notifier.wait_for(1, path="/notify")
    request = notifier.requests_to("/notify")[0]
    assert signing.verify(settings.NOTIFIER_SIGNING_SECRET, request.headers, request.body)
    message = json.loads(request.body)
    assert message["type"] == "agent.status_changed"
    assert message["data"]["agent_id"] == str(alice.pk)
    assert (message["data"]["old_status"], message["data"]["status"]) == ("online", "draining")
    assert message["timestamp"]


def test_a_plain_secret_is_turned_into_a_derived_signing_key(settings):
    settings.NOTIFIER_SIGNING_SECRET = "not-a-whsec-secret"

    key = signing_key()

    assert key == "whsec_" + base64.b64encode(hashlib.sha256(b"not-a-whsec-secret").digest()).decode()
    headers = signing.signed_headers(key, b"{}")
    assert signing.verify(key, headers, b"{}")


def test_a_failing_notifier_is_retried_with_the_same_message_id(
    notifier, eager_celery, django_capture_on_commit_callbacks, db
):
    answers = iter([(500, {}), (503, {}), (200, {})])
    notifier.routes["/notify"] = lambda request: next(answers)

    with django_capture_on_commit_callbacks(execute=True):
        notify("task.failed", {"task_id": "t1"})

    notifier.wait_for(3, path="/notify")
    requests = notifier.requests_to("/notify")
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert [json.loads(request.body)["data"] for request in requests] == [{"task_id": "t1"}] * 3


def test_retries_stop_after_five(notifier, eager_celery, django_capture_on_commit_callbacks, db):
    notifier.routes["/notify"] = (500, {})

    with django_capture_on_commit_callbacks(execute=True):
        notify("task.failed", {"task_id": "t1"})

    notifier.wait_for(6, path="/notify")
    assert len(notifier.requests_to("/notify")) == 6


def test_nothing_is_queued_without_a_notifier(settings, django_capture_on_commit_callbacks, db):
    settings.NOTIFIER_SERVICE_URL = None

    with django_capture_on_commit_callbacks() as callbacks:
        notify("agent.status_changed", {})

    assert callbacks == []


def test_nothing_is_sent_for_a_rolled_back_change(notifier, django_capture_on_commit_callbacks, alice):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.drain(agent_id=alice.pk)

    # Queued for after the commit only: a rollback drops the callbacks and nothing reaches the notifier.
    assert callbacks
    assert notifier.requests == []
