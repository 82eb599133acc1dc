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
def _forget_offered_capabilities():
    """What one test's agents offered is not offered in the next test's database."""
    from agents import offered

    offered.forget()


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


# --- Dispatch rings -------------------------------------------------------------------------------

# A channel of the tests' own, rung after an action: notifications reach a session in commit order, so
# the rings heard before this one are exactly those of the transactions that committed before it.
_RINGS_SEEN_SO_FAR = "orchestrator_tests_sentinel"


class DispatchRings:
    """A session LISTENing for dispatch rings, as every worker's bell does (tasks/engine/wake.py)."""

    def __init__(self, connection_params):
        import psycopg

        from tasks.engine import wake

        self._params = connection_params
        self._session = psycopg.connect(**connection_params, autocommit=True)
        self._session.execute(f"LISTEN {wake.CHANNEL}")
        self._session.execute(f"LISTEN {_RINGS_SEEN_SO_FAR}")

    def heard(self):
        """The payloads of the rings committed since the last call ("" = now, else a due time)."""
        import psycopg

        with psycopg.connect(**self._params, autocommit=True) as other:
            other.execute(f"NOTIFY {_RINGS_SEEN_SO_FAR}")
        payloads = []
        for notice in self._session.notifies(timeout=10):
            if notice.channel == _RINGS_SEEN_SO_FAR:
                return payloads
            payloads.append(notice.payload)
        raise AssertionError("the rings' sentinel never arrived")

    def close(self):
        self._session.close()


@pytest.fixture
def dispatch_rings(transactional_db):
    """Rings can only be heard from committed transactions, hence transactional_db."""
    from django.db import DEFAULT_DB_ALIAS, connections

    rings = DispatchRings(connections[DEFAULT_DB_ALIAS].get_connection_params())
    rings.heard()  # whatever set-up rang
    yield rings
    rings.close()
