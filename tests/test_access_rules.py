"""Who may call what: every /api/v1/ endpoint except the token endpoint needs credentials (401 without),
a user with no role gets 403, viewers read but may not write, operators and superusers write.

The rules are checked against every URL pattern under api/v1/ found in the URL resolver, so endpoints
added later are covered without touching this file. This module is also a URL configuration: the real
one plus a probe endpoint that declares nothing about permissions, like a newly added endpoint would.
"""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, include, path, resolve
from django.urls.resolvers import RoutePattern
from rest_framework import routers, viewsets
from rest_framework.response import Response
from rest_framework.test import APIClient

from orchestrator_project.urls import urlpatterns as project_urlpatterns


class ProbeViewSet(viewsets.ViewSet):
    """An endpoint with the project's default authentication and permissions and no opinion of its own."""

    def list(self, request):
        return Response({"user": str(request.user)})

    def create(self, request):
        return Response({"created": True}, status=201)

    def destroy(self, request, pk=None):
        return Response(status=204)


_router = routers.SimpleRouter()
_router.register("probe", ProbeViewSet, basename="probe")
urlpatterns = [path("api/v1/_test/", include(_router.urls)), *project_urlpatterns]

PROBE_URLCONF = __name__
PROBE_URL = "/api/v1/_test/probe/"
PROBE_DETAIL_URL = f"/api/v1/_test/probe/{uuid.uuid4()}/"
PUBLIC_ENDPOINTS = {"auth-token"}  # url names of the only endpoints anyone may call
WRITE_METHODS = {"post", "put", "patch", "delete"}
API_PREFIX = "api/v1/"

pytestmark = pytest.mark.urls(PROBE_URLCONF)

# --- Finding the endpoints ----------------------------------------------------------------------

_SAMPLE_VALUES = [str(uuid.UUID(int=1)), "1", "sample"]
_ROUTE_PARAMETER = re.compile(r"<(?:[^>:]+:)?([^>]+)>")
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>((?:[^()\\]|\\.)*)\)")


def _sample_for(regex):
    for value in _SAMPLE_VALUES:
        if re.fullmatch(regex, value):
            return value
    raise AssertionError(f"no sample value matches the URL parameter pattern {regex!r}")


def _concrete(pattern):
    """A path piece that `pattern` matches, with sample values in its parameters."""
    text = str(pattern)
    if isinstance(pattern, RoutePattern):  # path("agents/<uuid:pk>/")
        converters = pattern.converters  # only the typed ones: a bare <name> is a str, "[^/]+"
        return _ROUTE_PARAMETER.sub(
            lambda m: _sample_for(converters[m.group(1)].regex if m.group(1) in converters else "[^/]+"), text
        )
    # re_path / DRF routers: "^agents/(?P<pk>[^/.]+)/$"
    text = _REGEX_GROUP.sub(lambda m: _sample_for(m.group(2)), text)
    return re.sub(r"\\(.)", r"\1", text.removeprefix("^").removesuffix("$"))


_METHODS = ("get", "post", "put", "patch", "delete")


def _methods(callback):
    actions = getattr(callback, "actions", None)  # a viewset: its method -> action map
    if actions:
        return sorted(m for m in actions if m in _METHODS)
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is None:  # a plain function view: it must refuse every method
        return ["get", "post"]
    return sorted(m for m in _METHODS if hasattr(view_class, m))


def _walk(patterns, prefix):
    for pattern in patterns:
        piece = prefix + _concrete(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if piece.startswith(API_PREFIX) or API_PREFIX.startswith(piece):
                yield from _walk(pattern.url_patterns, piece)
        elif isinstance(pattern, URLPattern) and piece.startswith(API_PREFIX):
            # DRF's format-suffix duplicates (`.json`) route to the same views as the plain paths.
            if "format" not in pattern.pattern.regex.groupindex:
                yield pattern, "/" + piece


def api_endpoints():
    """(url name, path, callback, methods) for every protected endpoint under /api/v1/."""
    return [
        (pattern.name, url, pattern.callback, _methods(pattern.callback))
        for pattern, url in _walk(get_resolver().url_patterns, "")
        if pattern.name not in PUBLIC_ENDPOINTS
    ]


def refusals(client, expected_status, *, methods=None):
    """Every (method, path, status) of an endpoint that does not answer `expected_status`."""
    wrong = []
    for _, url, _, endpoint_methods in api_endpoints():
        for method in endpoint_methods:
            if methods is None or method in methods:
                status = client.generic(method.upper(), url).status_code
                if status != expected_status:
                    wrong.append((method.upper(), url, status))
    return wrong


# --- The walker itself --------------------------------------------------------------------------


def test_the_walker_finds_every_api_endpoint_and_its_paths_resolve_to_it():
    endpoints = api_endpoints()
    found = {(url, tuple(methods)) for _, url, _, methods in endpoints}
    assert (PROBE_URL, ("get", "post")) in found
    assert (f"/api/v1/_test/probe/{uuid.UUID(int=1)}/", ("delete",)) in found
    for name, url, callback, _ in endpoints:
        assert resolve(url).func is callback, f"{url} ({name}) resolves to another view"
    assert "auth-token" not in {name for name, *_ in endpoints}


# --- The rules ----------------------------------------------------------------------------------


def test_every_api_endpoint_answers_401_without_credentials_and_asks_for_a_bearer_token(anon_client):
    wrong = []
    for _, url, _, methods in api_endpoints():
        for method in methods:
            response = anon_client.generic(method.upper(), url)
            if response.status_code != 401 or not response.get("WWW-Authenticate", "").startswith("Bearer"):
                wrong.append((method.upper(), url, response.status_code, response.get("WWW-Authenticate")))
    assert wrong == []


def test_the_token_endpoint_is_open_to_anonymous_clients(anon_client, db):
    # An address of its own: throttle counters may be shared with other test runs.
    address = f"10.254.{uuid.uuid4().int % 256}.{uuid.uuid4().int % 256}"
    body = {"username": f"x-{uuid.uuid4().hex}", "password": "y"}
    response = anon_client.post("/api/v1/auth/token", body, format="json", REMOTE_ADDR=address)
    # 401 here means "wrong password", decided by the view: authentication was not demanded first.
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid username or password."


def test_a_user_without_a_role_gets_403_everywhere(nobody_client):
    assert refusals(nobody_client, 403) == []


def test_a_viewer_may_read(viewer_client):
    response = viewer_client.get(PROBE_URL)
    assert response.status_code == 200
    assert response.json() == {"user": "victor-viewer"}


def test_a_viewers_writes_get_403_everywhere(viewer_client):
    assert refusals(viewer_client, 403, methods=WRITE_METHODS) == []


def test_operators_and_superusers_may_write(operator_client, superuser_client):
    for client in (operator_client, superuser_client):
        assert client.post(PROBE_URL).status_code == 201
        assert client.delete(PROBE_DETAIL_URL).status_code == 204


def test_session_authentication_works(viewer):
    client = APIClient()
    client.force_login(viewer)
    response = client.get(PROBE_URL)
    assert response.status_code == 200
    assert response.json() == {"user": "victor-viewer"}


def test_session_writes_need_the_csrf_token(operator):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(PROBE_URL)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
