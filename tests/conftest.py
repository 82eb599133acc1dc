"""Shared fixtures: named actors (an operator, a viewer, a superuser), API clients, and test isolation.

Tests talk to a real PostgreSQL and a real Redis: the embedded ones unless DATABASE_URL/REDIS_URL are
set. Redis is moved to its own database number so that a running `make run` never sees test traffic.
"""

import os

# Settings are usually loaded by pytest-django before this file: they detect pytest themselves and move
# Redis to TEST_REDIS_DB and Celery to its own queue. These lines cover the other order.
os.environ.setdefault("DEBUG", "true")
os.environ["ORCHESTRATOR_TESTING"] = "true"

import pytest  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from tests.actors import make_user  # noqa: E402


@pytest.fixture(autouse=True)
def _clean_redis():
    """Throttle counters and flags from one test must not leak into the next."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield
    client.close()


@pytest.fixture
def operator(db):
    return make_user("olivia-operator", group="operators")


@pytest.fixture
def viewer(db):
    return make_user("victor-viewer", group="viewers")


@pytest.fixture
def superuser(db):
    return make_user("sam-superuser", superuser=True)


@pytest.fixture
def nobody(db):
    """An authenticated user in no role."""
    return make_user("nora-norole")


def _client_for(user):
    from orchestrator_project.accounts.models import ApiToken

    client = APIClient()
    _, raw = ApiToken.issue(user=user, name="test")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_token = raw
    return client


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def operator_client(operator):
    return _client_for(operator)


@pytest.fixture
def viewer_client(viewer):
    return _client_for(viewer)


@pytest.fixture
def superuser_client(superuser):
    return _client_for(superuser)


@pytest.fixture
def nobody_client(nobody):
    return _client_for(nobody)
