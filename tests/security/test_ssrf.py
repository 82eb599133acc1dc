"""SSRF beyond the registration table of tests/agents/test_endpoint_safety.py: DNS rebinding between
registration and dispatch, redirects towards metadata addresses, and IPv6 / numeric / encoded spellings.

Name resolution is scripted (`hermetic_dns`): a name answers what the test says, when it says it, and
every outgoing connection the worker's event loop opens is recorded, so "nothing was fetched" is seen,
not assumed.
"""

import ipaddress
import json
from http.server import BaseHTTPRequestHandler

import aiohappyeyeballs
import pytest

from agents.models import Agent
from tasks.models import Task
from tests.loopback_server import serve_in_background
from tests.tasks import conftest as engine
from tests.tasks.conftest import wait_until

# The real Celery worker and loopback agents of the engine's own tests.
celery_worker_session = engine.celery_worker_session
worker = engine.worker
fake_agents = engine.fake_agents

AGENTS = "/api/v1/agents"
TASKS = "/api/v1/tasks"
METADATA = "169.254.169.254"
PRIVATE_ONLY = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fc00::/7")]


class RecordingServer:
    """A loopback HTTP server that records every request (any method) and answers from a script."""

    def __init__(self, answers=None):
        self.answers = answers or {}  # path -> (status, headers, body)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.requests.append((self.command, self.path))
                status, headers, body = server.answers.get(self.path, (404, {}, b""))
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = _answer

        self.httpd = serve_in_background(Handler)

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started = []

    def start(answers=None):
        server = RecordingServer(answers)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def connections(monkeypatch):
    """(host, port) of every connection the agent-calling HTTP client tries to open: aiohttp opens
    them all through aiohappyeyeballs, whatever event loop runs it."""
    opened = []
    original = aiohappyeyeballs.start_connection

    async def recording(addr_infos, *args, **kwargs):
        opened.extend(info[4][:2] for info in addr_infos)
        return await original(addr_infos, *args, **kwargs)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", recording)
    return opened


def register(client, endpoint, **fields):
    body = {"type": "rag_agent", "name": "rebinder", "endpoint": endpoint, "capabilities": ["summarize"]}
    return client.post(AGENTS, {**body, **fields}, format="json")


def submit(client):
    response = client.post(TASKS, {"type": "summarize", "max_retries": 0}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["task_id"]


def failed(task_id):
    return wait_until(
        lambda: Task.objects.filter(task_id=task_id, status="failed").first(),
        timeout=20,
        message=f"task {task_id} to fail",
    )


# --- DNS rebinding: allowed at registration, forbidden at dispatch ------------------------------


@pytest.mark.parametrize(
    ("at_registration", "at_dispatch", "allowed", "reason"),
    [
        # Loopback is allowed here (development defaults): the metadata address never is.
        (["127.0.0.1"], [METADATA], None, "link-local, metadata"),
        (["127.0.0.1"], ["::ffff:169.254.169.254"], None, "link-local, metadata"),
        (["127.0.0.1"], ["127.0.0.1", METADATA], None, "link-local, metadata"),
        (["127.0.0.1"], ["fd00:ec2::254"], None, "link-local, metadata"),
        # Production defaults (private networks only): a private address at registration, loopback later.
        (["10.20.30.40"], ["127.0.0.1"], PRIVATE_ONLY, "outside AGENT_ALLOWED_NETWORKS"),
        (["10.20.30.40"], ["::1"], PRIVATE_ONLY, "outside AGENT_ALLOWED_NETWORKS"),
    ],
)
def test_a_name_that_rebinds_after_registration_is_refused_at_dispatch_without_a_connection(
    worker,
    operator_client,
    settings,
    hermetic_dns,
    servers,
    connections,
    at_registration,
    at_dispatch,
    allowed,
    reason,
):
    if allowed:
        settings.AGENT_ALLOWED_NETWORKS = allowed
    agent_server = servers({"/execute": (200, {"Content-Type": "application/json"}, b'{"result": "leaked"}')})
    name = "agent.rebind.test"
    hermetic_dns.answers[name] = at_registration
    response = register(operator_client, f"http://{name}:{agent_server.port}")
    assert response.status_code == 201, response.content
    # The name now points somewhere else (a short TTL and a hostile name server is all it takes).
    hermetic_dns.answers[name] = at_dispatch
    task = failed(submit(operator_client))

    assert task.error is None or "leaked" not in json.dumps(task.error)
    event = task.events.get(kind="failed")
    assert event.reason.startswith("refused to call the agent"), event.reason
    assert reason in event.reason
    assert agent_server.requests == []
    assert connections == [], connections
    # Refusal is our decision, not the agent's fault: its circuit is untouched.
    assert Agent.objects.get().consecutive_failures == 0


def test_the_same_name_is_called_while_it_still_resolves_to_an_allowed_address(
    worker, operator_client, hermetic_dns, servers, connections
):
    """The control for the test above: only the rebinding makes the difference."""
    agent_server = servers({"/execute": (200, {"Content-Type": "application/json"}, b'{"result": "fine"}')})
    name = "agent.stable.test"
    hermetic_dns.answers[name] = ["127.0.0.1"]
    assert register(operator_client, f"http://{name}:{agent_server.port}").status_code == 201
    task_id = submit(operator_client)
    task = wait_until(lambda: Task.objects.filter(task_id=task_id, status="completed").first(), timeout=20)
    assert task.result == "fine"
    assert agent_server.requests == [("POST", "/execute")]
    # The connection went to the checked address itself, not to a second lookup of the name.
    assert connections == [("127.0.0.1", agent_server.port)]


# --- Redirects are never followed ---------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_agent_is_not_followed(
    worker, operator_client, fake_agents, servers, connections, status
):
    metadata = servers({"/latest/meta-data/": (200, {}, b"ami-secret")})
    for location in (f"http://{METADATA}/latest/meta-data/", f"{metadata.url}/latest/meta-data/"):
        agent = fake_agents(lambda call, location=location: (status, {"moved": True}, {"Location": location}))
        Agent.objects.all().delete()
        response = register(operator_client, agent.url)
        assert response.status_code == 201
        agent.signing_secret = response.json()["signing_secret"]  # so that it accepts our calls
        connections.clear()
        task = failed(submit(operator_client))
        assert "redirects are not followed" in task.events.get(kind="failed").reason
        assert len(agent.calls) == 1
        assert metadata.requests == []
        assert connections == [("127.0.0.1", int(agent.url.rsplit(":", 1)[1]))]


def test_discovery_does_not_follow_a_redirect_for_the_agent_card(operator_client, servers, hermetic_dns):
    metadata = servers({"/card": (200, {"Content-Type": "application/json"}, b'{"skills": [{"id": "x"}]}')})
    agent = servers(
        {"/.well-known/agent-card.json": (302, {"Location": f"{metadata.url}/card"}, b"")},
    )
    response = operator_client.post(
        AGENTS, {"type": "rag_agent", "name": "n", "endpoint": agent.url}, format="json"
    )
    assert response.status_code == 400
    assert agent.requests == [("GET", "/.well-known/agent-card.json")]
    assert metadata.requests == []
    assert not Agent.objects.exists()


# --- Spellings refused at registration ----------------------------------------------------------

ALWAYS_REFUSED = [
    "http://[::ffff:a9fe:a9fe]/",
    "http://[0:0:0:0:0:ffff:169.254.169.254]/",
    "http://[::ffff:169.254.169.254]:8080/latest",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0xa9fea9fe/",
    "http://169.254.43518/",
    "http://[fe80::1%25eth0]/",
    "http://[::ffff:0.0.0.0]/",
    "http://0/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://100.100.100.200/",
    "http://%31%36%39.254.169.254/",
    "http://169.254.169.254%2f@127.0.0.1/",
    "http://127.0.0.1:9@169.254.169.254/",
    "http://169.254.169.254\t/",
    "http://[::ffff:169.254.169.254/",
    "HTTP://169.254.169.254/",
    "http://169.254.169.254:0/",
    "http://169.254.169.254:99999/",
    "gopher://127.0.0.1:9/",
    "//127.0.0.1:9/",
]
LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:9/",
    "http://0x7f.1:9/",
    "http://0x7f000001:9/",
    "http://017700000001:9/",
    "http://0177.0.0.1:9/",
    "http://127.1:9/",
    "http://2130706433:9/",
    "http://[::1]:9/",
    "http://[::ffff:7f00:1]:9/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:9/",
    "http://localhost:9/",
    "http://\uff11\uff12\uff17.0.0.1:9/",  # fullwidth digits: IDNA folds them to 127.0.0.1
    "http://[64:ff9b::7f00:1]:9/",  # NAT64 of loopback
    "http://[2002:7f00:1::]:9/",  # 6to4 of loopback
]


@pytest.mark.parametrize("endpoint", ALWAYS_REFUSED)
def test_metadata_in_any_spelling_is_refused_at_registration(operator_client, hermetic_dns, endpoint):
    response = register(operator_client, endpoint)
    assert response.status_code == 400, response.content
    assert "endpoint" in response.json()
    assert not Agent.objects.exists()


@pytest.mark.parametrize("endpoint", LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_refused_where_only_private_networks_are_allowed(
    operator_client, settings, hermetic_dns, endpoint
):
    settings.AGENT_ALLOWED_NETWORKS = PRIVATE_ONLY
    response = register(operator_client, endpoint)
    assert response.status_code == 400, response.content
    assert "endpoint" in response.json()
    assert not Agent.objects.exists()


def test_a_name_with_one_forbidden_address_among_allowed_ones_is_refused(operator_client, hermetic_dns):
    hermetic_dns.answers["mixed.test"] = ["127.0.0.1", METADATA]
    response = register(operator_client, "http://mixed.test:9/")
    assert response.status_code == 400
    assert METADATA in response.json()["endpoint"][0]
