"""A fake agent: a real HTTP server on loopback whose answers each test scripts.

It records every call (path, headers, parsed body, whether the signature verified) and answers with
what `behaviour(call)` returns: a (status, json_body[, headers]) tuple, or a callable that blocks
(for slow agents). By default it verifies Standard Webhooks signatures with its secret and answers
200 {"result": {"echo": input_data}}. Cancel notices (`POST /cancel`) are kept apart, in `cancels`,
and answered `cancel_status` (200): they are not calls of a task.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from orchestrator_project.signing import new_secret, verify
from tests.loopback_server import serve_in_background


@dataclass
class Call:
    path: str
    headers: dict
    body: dict
    signature_valid: bool
    at: float = field(default_factory=time.monotonic)


class FakeAgent:
    def __init__(self, behaviour=None, *, signing_secret=None, card=None):
        self.signing_secret = signing_secret or new_secret()
        self.behaviour = behaviour or (lambda call: (200, {"result": {"echo": call.body.get("input_data")}}))
        self.card = card
        self.calls = []
        self.cancels = []
        self.cancel_status = 200
        self.health_status = 200
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 resets bursts of connections
        self.server = serve_in_background(self._handler())

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _record(self, call):
        with self._changed:
            (self.cancels if call.path == "/cancel" else self.calls).append(call)
            self._changed.notify_all()

    def wait_for_cancels(self, count, timeout=15):
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.cancels) >= count, timeout), self.cancels
            return list(self.cancels)

    def wait_for_calls(self, count, timeout=15):
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.calls) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} calls, got {len(self.calls)}")
                self._changed.wait(remaining)
            return list(self.calls)

    def calls_for(self, task_id):
        return [c for c in self.calls if c.body.get("task_id") == str(task_id)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        agent = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=None):
                raw = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                if self.path == "/health":
                    self._send(agent.health_status, {"status": "ok"})
                elif self.path == "/.well-known/agent-card.json" and agent.card is not None:
                    self._send(200, agent.card)
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {
                        "unparseable": raw[:200].decode("utf-8", "replace"),
                        "length": len(raw),
                        "content_length": self.headers.get("Content-Length"),
                    }
                call = Call(self.path, headers, body, verify(agent.signing_secret, headers, raw))
                agent._record(call)
                if not call.signature_valid:
                    self._send(401, {"error": "bad signature"})
                    return
                if call.path == "/cancel":
                    self._send(agent.cancel_status, {})
                    return
                answer = agent.behaviour(call)
                if callable(answer):
                    answer = answer()
                status, payload, *rest = answer
                self._send(status, payload, rest[0] if rest else None)

        return Handler
