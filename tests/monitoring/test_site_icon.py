"""The site's icon: named by every admin page and the dashboard, and /favicon.ico (asked for by browsers
on pages that name none) answered with a redirect to it, always the same address."""

import pytest

from .conftest import make_watcher

pytestmark = pytest.mark.django_db

ICON = "/static/orchestrator/favicon.svg"
LINK = f'<link rel="icon" href="{ICON}" type="image/svg+xml">'


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def test_the_admin_and_the_dashboard_name_the_icon(client):
    assert LINK in client.get("/admin/login/").content.decode()  # anonymous visitors too
    client.force_login(make_watcher("stella-staff", superuser=True))
    for path in ("/admin/", "/admin/tasks/task/", "/admin/agents/agent/", "/dashboard/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert LINK in response.content.decode(), path


def test_favicon_ico_leads_to_the_icon_for_anyone(client):
    for method in (client.get, client.head):
        response = method("/favicon.ico")
        assert response.status_code == 302 and response["Location"] == ICON
    assert client.post("/favicon.ico").status_code == 405


def test_favicon_ico_redirects_nowhere_else_whatever_it_is_asked(client):
    for query in ({"next": "https://evil.example/"}, {"url": "//evil.example"}, {"redirect_to": "/admin/"}):
        assert client.get("/favicon.ico", query)["Location"] == ICON
    response = client.get("/favicon.ico", HTTP_HOST="evil.example", HTTP_X_FORWARDED_HOST="evil.example")
    assert response["Location"] == ICON  # a path: no host, whatever the request named


def test_the_icon_is_a_small_svg_without_scripts(client):
    response = client.get(ICON)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("image/svg+xml")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.lstrip().startswith(b"<svg") and len(body) < 1024
    assert b"<script" not in body.lower() and b"href" not in body.lower()
