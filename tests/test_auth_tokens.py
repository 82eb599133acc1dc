"""Issuing, using, refusing and revoking API tokens."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from orchestrator_project.accounts.models import ApiToken
from tests.actors import PASSWORD
from tests.test_access_rules import PROBE_URL, PROBE_URLCONF

# The probe endpoint stands for any API endpoint: readable by viewers, closed to everyone else.
pytestmark = pytest.mark.urls(PROBE_URLCONF)

TOKEN_URL = "/api/v1/auth/token"


@pytest.fixture
def post_token(anon_client):
    """POST to the token endpoint from an address of this test's own (see TestThrottling)."""
    address = f"10.255.{uuid.uuid4().int % 256}.{uuid.uuid4().int % 256}"
    return lambda body: anon_client.post(TOKEN_URL, body, format="json", REMOTE_ADDR=address)


@pytest.fixture
def authenticated_status(anon_client):
    """The status a GET of the probe endpoint gets with `Authorization: Bearer <raw>`."""
    return lambda raw: anon_client.get(PROBE_URL, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code


def test_it_issues_a_token_that_works_as_bearer(post_token, viewer, authenticated_status):
    response = post_token({"username": viewer.username, "password": PASSWORD})
    assert response.status_code == 201
    raw = response.json()["token"]
    assert raw.startswith("aou_")
    assert authenticated_status(raw) == 200


def test_it_refuses_a_wrong_password_with_401(post_token, viewer):
    response = post_token({"username": viewer.username, "password": "nope"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not ApiToken.objects.exists()


def test_it_refuses_an_unknown_user_with_401(post_token, db):
    response = post_token({"username": "mallory", "password": PASSWORD})
    assert response.status_code == 401


def test_it_refuses_an_inactive_user(post_token, viewer):
    viewer.is_active = False
    viewer.save()
    response = post_token({"username": viewer.username, "password": PASSWORD})
    assert response.status_code == 401


def test_it_rejects_a_body_without_credentials_with_400(post_token, db):
    assert post_token({"username": "x"}).status_code == 400
    assert post_token(["not", "an", "object"]).status_code == 400


def test_it_stores_only_a_hash_of_the_token(viewer_client):
    raw = viewer_client.raw_token
    token = ApiToken.objects.get()
    assert token.key_hash != raw and len(token.key_hash) == 64
    assert raw.startswith(token.prefix) and len(token.prefix) < len(raw)
    # Not in any column of any row: dump the table as text and look for it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(t)::text FROM accounts_apitoken t")
        dumped = " ".join(row[0] for row in cursor.fetchall())
    assert token.key_hash in dumped
    assert raw not in dumped


def test_a_revoked_token_gets_401(viewer_client, authenticated_status):
    raw = viewer_client.raw_token
    assert authenticated_status(raw) == 200
    ApiToken.objects.get().revoke()
    assert authenticated_status(raw) == 401


def test_the_admin_revoke_action_revokes_the_selected_tokens(admin_client, viewer, authenticated_status):
    _, kept = ApiToken.issue(user=viewer, name="kept")
    revoked, raw = ApiToken.issue(user=viewer, name="revoked")
    response = admin_client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [revoked.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 1 token(s)." in response.content.decode()
    revoked.refresh_from_db()
    assert revoked.revoked_at is not None
    assert authenticated_status(raw) == 401
    assert authenticated_status(kept) == 200


def test_the_admin_cannot_add_a_token_whose_value_nobody_would_see(admin_client, db):
    assert admin_client.get("/admin/accounts/apitoken/add/").status_code == 403


def test_an_expired_token_gets_401(viewer, authenticated_status):
    _, raw = ApiToken.issue(user=viewer, expires_at=timezone.now() + timedelta(hours=1))
    assert authenticated_status(raw) == 200
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert authenticated_status(raw) == 401


def test_a_token_of_a_deactivated_user_gets_401(viewer_client, viewer, authenticated_status):
    viewer.is_active = False
    viewer.save()
    assert authenticated_status(viewer_client.raw_token) == 401


def test_an_unknown_or_malformed_token_gets_401(anon_client, db, authenticated_status):
    assert authenticated_status("aou_" + "x" * 43) == 401
    response = anon_client.get(PROBE_URL, HTTP_AUTHORIZATION="Bearer two parts")
    assert response.status_code == 401


def test_create_api_token_mints_a_working_token(viewer, authenticated_status):
    out = StringIO()
    call_command("create_api_token", viewer.username, "--name", "ci", "--days", "7", stdout=out)
    raw = out.getvalue().strip()
    assert authenticated_status(raw) == 200
    token = ApiToken.objects.get(user=viewer)
    assert token.name == "ci"
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)


def test_create_api_token_names_a_missing_user(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


class TestThrottling:
    """The token endpoint is throttled per client address and, separately, per username.

    Every test uses addresses and usernames of its own, so that counters in a Redis shared with other
    test runs can neither trip these tests nor be tripped by them.
    """

    @pytest.fixture(autouse=True)
    def _three_per_minute(self, settings):
        # The throttles read the rate per request (see throttles.py), so this override applies.
        rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    @pytest.fixture
    def guesser(self, anon_client, db):
        unique = uuid.uuid4()
        addresses = (f"10.{n}.{unique.bytes[0]}.{unique.bytes[1]}" for n in range(256))
        usernames = (
            f"{name}-{unique.hex[:12]}" for name in ("alice", "bob", "carol", "dave", "erin", "frank")
        )

        def attempt(username, address, password="guess"):
            body = {"username": username, "password": password}
            return anon_client.post(TOKEN_URL, body, format="json", REMOTE_ADDR=address)

        return attempt, addresses, usernames

    def test_one_address_is_throttled_after_the_rate(self, guesser):
        attempt, addresses, usernames = guesser
        address = next(addresses)
        statuses = [attempt(next(usernames), address).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert attempt(next(usernames), next(addresses)).status_code == 401

    def test_one_username_is_throttled_across_addresses(self, guesser):
        attempt, addresses, usernames = guesser
        username = next(usernames)
        statuses = [attempt(username, next(addresses)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        # Matched case-insensitively: changing the case does not reset the count.
        assert attempt(username.upper(), next(addresses)).status_code == 429
        assert attempt(next(usernames), next(addresses)).status_code == 401

    def test_even_the_right_password_is_refused_once_throttled(self, guesser, viewer):
        attempt, addresses, usernames = guesser
        address = next(addresses)
        for _ in range(3):
            attempt(next(usernames), address)
        response = attempt(viewer.username, address, password=PASSWORD)
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 60
        assert not ApiToken.objects.exists()

    def test_the_count_resets_after_the_window(self, guesser):
        attempt, addresses, usernames = guesser
        address, username = next(addresses), next(usernames)
        with time_machine.travel(timezone.now(), tick=False) as traveller:
            for _ in range(3):
                attempt(username, address)
            assert attempt(username, address).status_code == 429
            traveller.shift(timedelta(seconds=61))
            assert attempt(username, address).status_code == 401
