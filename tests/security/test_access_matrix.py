"""Who may do what, as one table: every endpoint × every role, each cell the status it must answer.

Roles carry bearer tokens (the API's credentials): anonymous, a viewer, an operator, agent A, agent B and
a superuser. Object endpoints aim at agent A and its tasks, so agent B's column is the BOLA check (another
agent's objects are 404: not even their existence leaks) and the viewer's and agents' write cells are
the BFLA check (403). Each request runs in a savepoint that is rolled back, so every cell starts from the
same state. The API part of the table is checked against the URL resolver: an endpoint added without a
row here fails the first test.
"""

import json

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from tests.security.conftest import bearer_client, make_task
from tests.test_access_rules import api_endpoints
from workflows import definitions, runs

ROLES = ("anonymous", "viewer", "operator", "agent_a", "agent_b", "superuser")
# 2xx means: allowed (the exact success code is in the cell). 409 is also "allowed": the role may use
# the verb and the refusal is about the object's state.
A = "{agent_a}"
REGISTRATION = {"type": "t", "name": "matrix", "endpoint": "http://127.0.0.1:9/matrix", "capabilities": ["c"]}
RESULT = {"status": "completed", "result": {"answer": 42}}
REPLAY = {"since": "2026-01-01T00:00:00Z"}
SPEC = {
    "steps": [
        {"id": "review", "type": "approval"},
        {"id": "a", "task_type": "c", "depends_on": ["review"]},
        {
            "id": "fan",
            "type": "map",
            "task_type": "c",
            "depends_on": ["review"],
            "over": {"$path": "$.input.n"},
        },
    ]
}
WORKFLOW = {"name": "matrix-2", "spec": SPEC}
RUN = "{run}"

# (method, url name, path, body, then one status per role in ROLES order: anonymous, viewer, operator,
#  agent A, agent B, superuser)
MATRIX = [
    ("GET", "agent-list", "/api/v1/agents", None, 401, 200, 200, 403, 403, 200),
    ("POST", "agent-list", "/api/v1/agents", REGISTRATION, 401, 403, 201, 403, 403, 201),
    ("GET", "agent-detail", f"/api/v1/agents/{A}", None, 401, 200, 200, 200, 404, 200),
    ("DELETE", "agent-detail", f"/api/v1/agents/{A}", None, 401, 403, 204, 403, 403, 204),
    ("POST", "agent-heartbeat", f"/api/v1/agents/{A}/heartbeat", {}, 401, 403, 200, 200, 404, 200),
    ("POST", "agent-drain", f"/api/v1/agents/{A}/drain", None, 401, 403, 200, 403, 403, 200),
    ("POST", "agent-resume", f"/api/v1/agents/{A}/resume", None, 401, 403, 200, 403, 403, 200),
    ("GET", "capability-list", "/api/v1/capabilities", None, 401, 200, 200, 403, 403, 200),
    ("GET", "task-list", "/api/v1/tasks", None, 401, 200, 200, 403, 403, 200),
    ("POST", "task-list", "/api/v1/tasks", {"type": "c"}, 401, 403, 201, 403, 403, 201),
    ("POST", "task-bulk", "/api/v1/tasks/bulk", {"tasks": [{"type": "c"}]}, 401, 403, 201, 403, 403, 201),
    ("GET", "task-detail", "/api/v1/tasks/{running}", None, 401, 200, 200, 403, 403, 200),
    ("DELETE", "task-detail", "/api/v1/tasks/{running}", None, 401, 403, 200, 403, 403, 200),
    ("POST", "task-assign", "/api/v1/tasks/{pending}/assign", {}, 401, 403, 200, 403, 403, 200),
    ("POST", "task-execute", "/api/v1/tasks/{completed}/execute", None, 401, 403, 200, 403, 403, 200),
    ("POST", "task-retry", "/api/v1/tasks/{failed}/retry", None, 401, 403, 200, 403, 403, 200),
    ("POST", "task-result", "/api/v1/tasks/{running}/result", RESULT, 401, 403, 200, 200, 404, 200),
    # Agent B reporting for its own task is allowed; for agent A's it is a 404 (the row above).
    ("POST", "task-result", "/api/v1/tasks/{running_b}/result", RESULT, 401, 403, 200, 404, 200, 200),
    # Republishing past events: operators (and superusers) only.
    ("POST", "events-replay", "/api/v1/events/replay", REPLAY, 401, 403, 202, 403, 403, 202),
    # Workflows: viewers read, operators write. The run waits on its approval step, so approve and
    # reject are allowed; resume (the run is not paused) and retry (it has not failed) are refused 409.
    ("GET", "workflow-list", "/api/v1/workflows", None, 401, 200, 200, 403, 403, 200),
    ("POST", "workflow-list", "/api/v1/workflows", WORKFLOW, 401, 403, 201, 403, 403, 201),
    ("POST", "workflow-validate", "/api/v1/workflows/validate", {"spec": SPEC}, 401, 403, 200, 403, 403, 200),
    ("GET", "workflow-detail", "/api/v1/workflows/matrix", None, 401, 200, 200, 403, 403, 200),
    ("GET", "workflow-versions", "/api/v1/workflows/matrix/versions", None, 401, 200, 200, 403, 403, 200),
    ("GET", "workflow-version", "/api/v1/workflows/matrix/versions/1", None, 401, 200, 200, 403, 403, 200),
    ("GET", "workflow-run-list", "/api/v1/workflow-runs", None, 401, 200, 200, 403, 403, 200),
    (
        "POST",
        "workflow-run-list",
        "/api/v1/workflow-runs",
        {"workflow": "matrix"},
        401,
        403,
        201,
        403,
        403,
        201,
    ),
    ("GET", "workflow-run-detail", f"/api/v1/workflow-runs/{RUN}", None, 401, 200, 200, 403, 403, 200),
    # A map step's items are read like the run's detail (the map has not started: an empty page).
    (
        "GET",
        "workflow-run-items",
        f"/api/v1/workflow-runs/{RUN}/steps/fan/items",
        None,
        401,
        200,
        200,
        403,
        403,
        200,
    ),
    (
        "POST",
        "workflow-run-cancel",
        f"/api/v1/workflow-runs/{RUN}/cancel",
        None,
        401,
        403,
        200,
        403,
        403,
        200,
    ),
    ("POST", "workflow-run-pause", f"/api/v1/workflow-runs/{RUN}/pause", None, 401, 403, 200, 403, 403, 200),
    (
        "POST",
        "workflow-run-resume",
        f"/api/v1/workflow-runs/{RUN}/resume",
        None,
        401,
        403,
        409,
        403,
        403,
        409,
    ),
    (
        "POST",
        "workflow-run-retry-step",
        f"/api/v1/workflow-runs/{RUN}/steps/review/retry",
        {},
        401,
        403,
        409,
        403,
        403,
        409,
    ),
    (
        "POST",
        "workflow-run-approve",
        f"/api/v1/workflow-runs/{RUN}/steps/review/approve",
        {},
        401,
        403,
        200,
        403,
        403,
        200,
    ),
    (
        "POST",
        "workflow-run-reject",
        f"/api/v1/workflow-runs/{RUN}/steps/review/reject",
        {},
        401,
        403,
        200,
        403,
        403,
        200,
    ),
    # Outside /api/v1: monitoring and documentation.
    ("GET", None, "/status", None, 401, 200, 200, 403, 403, 200),
    ("GET", None, "/health", None, 200, 200, 200, 200, 200, 200),
    ("GET", None, "/api/schema/", None, 200, 200, 200, 200, 200, 200),
    # /metrics: a token or an allowed network, whatever the role (this client is outside the networks).
    ("GET", None, "/metrics", None, 403, 403, 403, 403, 403, 403),
    # Session-only pages: an API token, even a superuser's, does not open them (login redirect).
    ("GET", None, "/dashboard/", None, 302, 302, 302, 302, 302, 302),
    ("GET", None, "/dashboard/api/summary", None, 302, 302, 302, 302, 302, 302),
    ("GET", None, "/admin/agents/agent/", None, 302, 302, 302, 302, 302, 302),
    ("GET", None, "/admin/accounts/apitoken/", None, 302, 302, 302, 302, 302, 302),
    ("GET", None, "/admin/outbox/outboxevent/", None, 302, 302, 302, 302, 302, 302),
]


@pytest.fixture
def world(db, agent_a, agent_b, viewer_client, operator_client, superuser_client):
    objects = {
        "agent_a": agent_a.pk,
        "running": make_task("running", agent=agent_a).pk,
        "running_b": make_task("running", agent=agent_b).pk,
        # Assignable now: agent A is online with a free slot and the capability.
        "pending": make_task("pending").pk,
        "completed": make_task("completed", agent=agent_a, result={"answer": 1}).pk,
        "failed": make_task("failed", agent=agent_a).pk,
        "run": _waiting_run(),
    }
    clients = {
        "anonymous": APIClient(),
        "viewer": viewer_client,
        "operator": operator_client,
        "agent_a": bearer_client(agent_a.token),
        "agent_b": bearer_client(agent_b.token),
        "superuser": superuser_client,
    }
    return objects, clients


def _waiting_run():
    """A run of workflow `matrix`, waiting on its approval step."""
    definitions.create_definition(name="matrix", spec=SPEC)
    run, _ = runs.start_run(workflow="matrix")
    return run.pk


class _Rollback(Exception):
    def __init__(self, response):
        self.response = response


def call(client, method, path, body):
    """The request in a savepoint that is then rolled back: the next cell sees the same world."""
    try:
        with transaction.atomic():
            response = client.generic(
                method,
                path,
                "" if body is None else json.dumps(body),
                content_type="application/json",
                REMOTE_ADDR="192.0.2.10",
            )
            raise _Rollback(response)
    except _Rollback as rollback:
        return rollback.response


def test_every_api_endpoint_and_method_has_a_row():
    rows = {(method, name) for method, name, *_ in MATRIX if name}
    found = {(method.upper(), name) for name, _, _, methods in api_endpoints() for method in methods}
    assert found - rows == set(), "endpoints without a row in the access matrix"
    assert rows - found == set(), "rows for endpoints that no longer exist"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_column(world, role):
    objects, clients = world
    column = ROLES.index(role)
    wrong = []
    for method, _, template, body, *expected in MATRIX:
        path = template.format(**objects)
        status = call(clients[role], method, path, body).status_code
        if status != expected[column]:
            wrong.append((method, template, f"expected {expected[column]}", f"got {status}"))
    assert wrong == []


def test_refusals_leave_everything_as_it_was(world):
    """Beyond the status: no refused request of an agent or a viewer changed a row."""
    from agents.models import Agent
    from tasks.models import Task, TaskEvent

    objects, clients = world

    def state():
        return (
            list(Agent.objects.order_by("pk").values()),
            list(Task.objects.order_by("pk").values()),
            TaskEvent.objects.count(),
        )

    before = state()
    for role in ("anonymous", "viewer", "agent_b"):
        for method, _, template, body, *expected in MATRIX:
            if expected[ROLES.index(role)] in (401, 403, 404) and method != "GET":
                response = clients[role].generic(
                    method,
                    template.format(**objects),
                    "" if body is None else json.dumps(body),
                    content_type="application/json",
                )
                assert response.status_code in (401, 403, 404)
    assert state() == before


def test_a_superuser_session_opens_the_pages_a_token_does_not(world, superuser):
    client = APIClient()
    client.force_login(superuser)
    for path in (
        "/dashboard/",
        "/dashboard/api/summary",
        "/admin/agents/agent/",
        "/admin/accounts/apitoken/",
    ):
        assert client.get(path).status_code == 200, path
