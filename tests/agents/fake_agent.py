"""A small agent on loopback for the agents app's tests: a real threaded HTTP server with scripted routes.

`routes` maps a path to (status, json_body) or to a callable taking the Request and returning one; a
path with no route answers 404. Every request is recorded, and `wait_for(count)` blocks until that many
have arrived (with a deadline), so tests wait for events instead of sleeping.
"""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.loopback_server import serve_in_background


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes


class FakeAgent:
    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests = []
        self._arrived = threading.Condition()
        self.server = serve_in_background(self._handler())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def card(self, skills):
        """Serve an A2A agent card with these skills."""
        self.routes["/.well-known/agent-card.json"] = (200, {"name": "fake", "skills": skills})

    def health(self, status):
        self.routes["/health"] = (status, {"status": "ok" if status == 200 else "failing"})

    def requests_to(self, path):
        with self._arrived:
            return [request for request in self.requests if request.path == path]

    def wait_for(self, count, *, path=None, timeout=10):
        with self._arrived:
            done = self._arrived.wait_for(
                lambda: len([r for r in self.requests if path is None or r.path == path]) >= count, timeout
            )
        assert done, f"expected {count} requests to {path or 'any path'}, got {len(self.requests)}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, request):
        route = self.routes.get(request.path, (404, {"error": "not found"}))
        return route(request) if callable(route) else route

    def _record(self, request):
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _handler(self):
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                status, body = agent._answer(request)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                # Recorded after answering: a test that waits for the request also sees its effect.
                agent._record(request)

            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass

        return Handler
