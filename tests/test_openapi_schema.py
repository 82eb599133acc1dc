"""The OpenAPI schema validates, and the API docs are served from local static files without login."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

ASSET_URL = re.compile(r"""<(?:script|link)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


def test_the_schema_validates_without_warnings(tmp_path):
    # --fail-on-warn: a warning (an unresolvable serializer, a guessed type) fails the suite.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/api/v1/auth/token" in (tmp_path / "schema.yml").read_text()


def test_the_schema_is_json_openapi_3_when_asked_for_json(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Agent Orchestrator API"
    assert "/api/v1/auth/token" in schema["paths"]


def test_the_schema_documents_bearer_tokens(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A user token from POST /api/v1/auth/token (aou_…) or an agent's token (aoa_…).",
    }
    operations = {
        (path, method): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    # The token endpoint itself needs no credentials (no requirement, and none inherited from the top).
    assert "security" not in schema
    assert operations.pop(("/api/v1/auth/token", "post")).get("security", []) in ([], [{}])
    # Every other operation accepts a bearer token.
    assert operations
    assert [key for key, op in operations.items() if {"bearerAuth": []} not in op.get("security", [])] == []


def test_the_schema_is_yaml_by_default(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


@pytest.mark.parametrize("url", ["/docs", "/redoc"])
def test_the_docs_are_served_without_login_from_local_assets_only(client, url):
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assets = ASSET_URL.findall(html)
    assert assets, f"{url} loads no scripts or stylesheets?"
    assert [a for a in assets if not a.startswith("/static/")] == []
    # Nothing anywhere in the page points at another host (fonts, CDNs, preconnects).
    assert re.findall(r"""(?:src|href)=["'](?:https?:)?//""", html) == []
    for asset in assets:
        static = client.get(asset)
        assert static.status_code == 200, asset
        b"".join(static.streaming_content if static.streaming else [static.content])


def test_the_docs_point_at_the_local_schema(client):
    assert '"/api/schema/"' in client.get("/docs").content.decode()
    assert 'spec-url="/api/schema/"' in client.get("/redoc").content.decode()


def test_the_schema_command_writes_json_on_request():
    out = StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    assert out.getvalue().lstrip().startswith("{")
