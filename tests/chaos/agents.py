"""Agents for the chaos scenarios: the shared fake agent with streamed and hanging answers added.

Every agent records each call it receives (task id and attempt in the body), so the books can check that
no agent saw more calls for a task than the task made attempts.
"""

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agents.models import Agent
from orchestrator_project.accounts.models import hash_token, new_raw_token
from orchestrator_project.signing import new_secret, verify
from tests.fake_agent import Call, FakeAgent

CAPABILITY = "chaos"


def echo(call):
    """The answer the books expect from a healthy agent: which task and which attempt it served."""
    return 200, {"result": {"task_id": call.body["task_id"], "attempt": call.body["attempt"]}}


def answers_after(low, high, answer=echo):
    """A behaviour that thinks for a random time in [low, high] seconds, then gives `answer`."""

    def behaviour(call):
        time.sleep(random.uniform(low, high))
        return answer(call)

    return behaviour


@dataclass
class Streamed:
    """A response body written lazily: `chunks()` yields it piece by piece (never built in memory).

    A behaviour answers `(status, Streamed(...))`."""

    content_length: int
    chunks: Callable[[], Iterator[bytes]]


def huge_body(megabytes):
    """`megabytes` MiB of a JSON string, one reused 1 MiB chunk at a time."""
    chunk = b"x" * 2**20

    def chunks():
        yield b'{"result": "'
        for _ in range(megabytes):
            yield chunk

    return Streamed(megabytes * 2**20 + 12, chunks)


def trickled_body(seconds, pieces=40):
    """A valid answer whose bytes arrive one by one over `seconds`: each read is quick, the whole is not."""
    body = json.dumps({"result": "slow"}).ljust(pieces).encode()

    def chunks():
        for byte in body:
            time.sleep(seconds / len(body))
            yield bytes([byte])

    return Streamed(len(body), chunks)


class ChaosAgent(FakeAgent):
    """FakeAgent that also streams answers, counts calls in flight and the bytes it managed to send."""

    def __init__(self, behaviour=echo, **kwargs):
        self.in_flight = 0
        self.bytes_sent = []
        super().__init__(self._counting(behaviour), **kwargs)
        # Killed workers hang up mid-request all the time here; that is the point, not worth a traceback.
        self.server.handle_error = lambda request, client_address: None

    def _counting(self, behaviour):
        def counted(call):
            with self._lock:
                self.in_flight += 1
            try:
                return behaviour(call)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return counted

    def _handler(self):
        agent = self
        base = super()._handler()

        class Handler(base):
            def _send(self, status, body, headers=None):
                if not isinstance(body, Streamed):
                    return super()._send(status, body, headers)
                self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(body.content_length))
                self.end_headers()
                sent = 0
                try:
                    for chunk in body.chunks():
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # the orchestrator hung up: exactly what a capped or timed-out read does
                with agent._lock:
                    agent.bytes_sent.append(sent)

        return Handler


class HangingAgent:
    """Accepts connections and reads the request, then never answers (until closed)."""

    def __init__(self):
        self.signing_secret = new_secret()
        self.calls = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets = []
        self.server = socket.create_server(("127.0.0.1", 0), backlog=128)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.getsockname()[1]}"

    def calls_for(self, task_id):
        return [c for c in self.calls if c.body.get("task_id") == str(task_id)]

    def _accept(self):
        while not self._closed.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        raw = b""
        with conn:
            try:
                while b"\r\n\r\n" not in raw:
                    raw += conn.recv(65536) or self._eof()
                head, body = raw.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
                while len(body) < int(headers.get("content-length", 0)):
                    body += conn.recv(65536) or self._eof()
                path = lines[0].split()[1]
                parsed = json.loads(body) if path.endswith("/execute") else {}
                with self._lock:
                    self.calls.append(Call(path, headers, parsed, verify(self.signing_secret, headers, body)))
                while conn.recv(65536):  # hold the connection open, answering nothing, until the peer leaves
                    pass
            except (OSError, EOFError, ValueError):
                return

    @staticmethod
    def _eof():
        raise EOFError

    def close(self):
        self._closed.set()
        self.server.close()
        with self._lock:
            for conn in self._sockets:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def register(fake, *, endpoint=None, capabilities=(CAPABILITY,), max_concurrency=20, **fields):
    """Register `fake` in the database as an online agent; returns (agent, its raw API token)."""
    token = new_raw_token("aoa_")
    agent = Agent.objects.create(
        type="chaos_agent",
        name=f"chaos {endpoint or fake.url}",
        endpoint=endpoint or fake.url,
        capabilities=list(capabilities),
        max_concurrency=max_concurrency,
        token_hash=hash_token(token),
        signing_secret=fake.signing_secret,
        **{"last_heartbeat": None, **fields},
    )
    return agent, token
