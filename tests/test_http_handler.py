"""The ASGI handler serves sync views through the sync middleware chain on its own thread pool and
leaves async views (execute's wait, /health/detailed) on Django's async path."""

import asyncio
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from orchestrator_project.accounts.models import ApiToken
from orchestrator_project.http_handler import OneHopASGIHandler, _is_async_view
from tasks.models import Task
from tests.actors import make_user


def _scope(method, path, token=None, length=0):
    headers = [
        (b"host", b"testserver"),
        (b"content-type", b"application/json"),
        (b"content-length", str(length).encode()),
    ]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def _request(app, method, path, body=None, token=None):
    payload = json.dumps(body).encode() if body is not None else b""
    communicator = ApplicationCommunicator(app, _scope(method, path, token, len(payload)))
    await communicator.send_input({"type": "http.request", "body": payload, "more_body": False})
    start = await communicator.receive_output(timeout=10)
    content = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=10)
    return start["status"], json.loads(content) if content else None


def test_only_coroutine_views_take_the_async_path():
    assert _is_async_view("/api/v1/tasks/00000000-0000-0000-0000-000000000000/execute")
    assert _is_async_view("/health/detailed")
    assert not _is_async_view("/api/v1/tasks")
    assert not _is_async_view("/api/v1/agents/register")
    assert not _is_async_view("/no/such/page")


@pytest.mark.django_db(transaction=True)
def test_sync_views_run_on_the_pool_and_give_their_connection_back(monkeypatch):
    user = make_user("hana-handler", group="operators")
    _, token = ApiToken.issue(user=user, name="t")
    app = OneHopASGIHandler()
    seen = []
    serve = app._sync_handler.get_response

    def recording(request):
        seen.append(threading.current_thread().name)
        response = serve(request)
        seen.append(connections["default"].connection is not None)  # the view did use the database
        return response

    monkeypatch.setattr(app._sync_handler, "get_response", recording)
    status, body = asyncio.run(_request(app, "POST", "/api/v1/tasks", {"type": "summarize"}, token))
    assert status == 201, body
    assert Task.objects.filter(task_id=body["task_id"]).exists()
    assert seen[0].startswith("http") and seen[1] is True
    # The thread closed its connection after the request (back to the pool in production).
    still_open = app._executor.submit(lambda: connections["default"].connection).result()
    assert still_open is None

    status, body = asyncio.run(_request(app, "POST", "/api/v1/tasks", {"type": "bad type!"}, token))
    assert status == 400 and "type" in body
    status, _ = asyncio.run(_request(app, "GET", "/api/v1/tasks"))
    assert status == 401


@pytest.mark.django_db(transaction=True)
def test_sync_requests_start_no_thread_each(monkeypatch, settings):
    app = OneHopASGIHandler()
    asyncio.run(_request(app, "GET", "/api/v1/tasks"))  # the pool's thread and asgiref's shared one
    started = []
    original = threading.Thread.start

    def counting(thread):
        started.append(thread.name)
        return original(thread)

    monkeypatch.setattr(threading.Thread, "start", counting)
    requests = 4 * settings.WEB_THREADS
    for _ in range(requests):
        status, _ = asyncio.run(_request(app, "GET", "/api/v1/tasks"))
        assert status == 401
    # Django's per-request ThreadSensitiveContext would have started one thread per request. The only
    # threads started here are the pool's own, which it may add lazily up to its size (a request can
    # arrive before the last one's thread says it is idle).
    assert all(name.startswith("http_") for name in started), started
    assert len(app._executor._threads) <= settings.WEB_THREADS < requests


def test_which_views_are_async_is_remembered_per_path_until_the_urlconf_changes(settings):
    _is_async_view.cache_clear()
    assert not _is_async_view("/api/v1/tasks")
    assert not _is_async_view("/api/v1/tasks")
    assert _is_async_view.cache_info().hits == 1

    settings.ROOT_URLCONF = "monitoring.urls"

    assert _is_async_view.cache_info().currsize == 0
    assert _is_async_view("/health/detailed")
