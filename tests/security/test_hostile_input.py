"""Bad input of every kind gets the right 4xx, a JSON answer that says why, and stores nothing.

Each row names a request and the refusal expected; every request is checked against a snapshot of the
row counts (agents, their status changes, tasks, task events, API tokens) and of the object it aimed at.
"""

import json
import uuid

import pytest
from django.conf import settings

from agents.models import Agent, AgentStatusChange
from orchestrator_project.accounts.models import ApiToken
from tasks.models import Task, TaskEvent
from tests.security.conftest import bearer_client, make_task

AGENTS = "/api/v1/agents"
TASKS = "/api/v1/tasks"
UNKNOWN = uuid.UUID("00000000-0000-4000-8000-0000000dead0")


def counts():
    return {
        model.__name__: model.objects.count()
        for model in (Agent, AgentStatusChange, Task, TaskEvent, ApiToken)
    }


def send(client, method, path, body=None, *, content_type="application/json", **headers):
    if body is not None and not isinstance(body, str | bytes):
        body = json.dumps(body)
    return client.generic(
        method, path, body if body is not None else "", content_type=content_type, **headers
    )


def assert_refused(response, status, *names):
    """`status`, a JSON object body, and every name in `names` among its keys (the fields at fault)."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict)
    for name in names:
        assert name in body, (name, body)
    return body


@pytest.fixture
def unchanged(db):
    """Asserts, after the test, that no row was added or removed anywhere."""
    before = {}

    def take():
        before.update(counts())

    yield take
    if before:
        assert counts() == before


def registration(**overrides):
    body = {
        "type": "rag_agent",
        "name": "hostile",
        "endpoint": "http://127.0.0.1:9/hostile",
        "capabilities": ["summarize"],
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def task_body(**overrides):
    body = {"type": "summarize", "input_data": {"q": "?"}}
    body.update(overrides)
    return body


# --- Invalid JSON and bodies that are not objects ------------------------------------------------

INVALID_JSON = [
    '{"type": ',
    '{"type": "x"} trailing',
    "{'type': 'x'}",
    '{"type": "x",}',
    "\ufeff{}garbage",
    b'{"type": "\xff\xfe"}',
    '{"input_data": {"a": NaN}}',
    '{"input_data": {"a": Infinity}}',
    '{"a": ' + "9" * 5000 + "}",
]
NOT_AN_OBJECT = ["[]", '"a string"', "42", "null", "true", '[{"type": "x"}]']
BODY_ENDPOINTS = [
    ("POST", AGENTS),
    ("POST", TASKS),
    ("POST", f"{TASKS}/bulk"),
    ("POST", "/api/v1/auth/token"),
]


@pytest.mark.parametrize("body", INVALID_JSON)
@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_invalid_json_is_a_400_parse_error(operator_client, unchanged, method, path, body):
    unchanged()
    detail = assert_refused(send(operator_client, method, path, body, REMOTE_ADDR="10.9.9.9"), 400, "detail")
    assert "JSON parse error" in detail["detail"]


@pytest.mark.parametrize("body", NOT_AN_OBJECT)
@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_a_body_that_is_not_an_object_is_a_400(operator_client, unchanged, method, path, body):
    unchanged()
    assert_refused(send(operator_client, method, path, body, REMOTE_ADDR="10.9.9.8"), 400)


def test_invalid_json_on_agent_and_task_verbs_is_a_400(operator_client, agent_a, unchanged):
    running = make_task("running", agent=agent_a)
    unchanged()
    for path in (
        f"{AGENTS}/{agent_a.pk}/heartbeat",
        f"{TASKS}/{running.pk}/assign",
        f"{TASKS}/{running.pk}/result",
    ):
        assert_refused(send(operator_client, "POST", path, '{"status": '), 400, "detail")
    running.refresh_from_db()
    assert running.status == "running"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_body_that_is_not_json_is_a_415(operator_client, unchanged, content_type):
    unchanged()
    for path in (AGENTS, TASKS, f"{TASKS}/bulk"):
        response = send(operator_client, "POST", path, "type=summarize", content_type=content_type)
        assert_refused(response, 415, "detail")


# --- Wrong types in every field ----------------------------------------------------------------

TEXT = [12, 1.5, True, [], {}, None, ["x"]]
INTEGER = ["5", 5.5, True, [], {}, None, "ten"]
BOOLEAN = ["true", 1, 0, "yes", [], {}, None]
OBJECT = ["{}", [], 1, True, "x", None]
LIST_OF_NAMES = ["summarize", {}, 1, [1], [None], [[]], [{}], []]
DATETIME = [12, "not a date", "2020-13-45T00:00:00Z", [], {}, True]
CHOICE = ["fastest-ever", 1, [], {}, True]

AGENT_FIELD_TYPES = {
    "type": TEXT,
    "name": TEXT,
    "endpoint": TEXT,
    "capabilities": LIST_OF_NAMES,
    "metadata": OBJECT,
    "max_concurrency": INTEGER,
    "weight": INTEGER,
    "heartbeat_timeout": INTEGER,
}
TASK_FIELD_TYPES = {
    "type": TEXT,
    "description": [value for value in TEXT if value is not None],
    "input_data": OBJECT,
    "required_capabilities": LIST_OF_NAMES,
    "priority": INTEGER,
    "max_retries": INTEGER,
    "timeout_seconds": INTEGER,
    "deadline": DATETIME,
    "auto_dispatch": BOOLEAN,
    "strategy": CHOICE,
}
HEARTBEAT_FIELD_TYPES = {
    "status": CHOICE + ["offline", "unhealthy"],
    "current_load": INTEGER[:-1] + [-1],
    "metrics": OBJECT[:-1],
}
RESULT_FIELD_TYPES = {"status": CHOICE + ["running", "cancelled", None], "retryable": BOOLEAN}


def _cases(field_types):
    return [(field, value) for field, values in field_types.items() for value in values]


@pytest.mark.parametrize(("field", "value"), _cases(AGENT_FIELD_TYPES))
def test_a_registration_with_a_wrong_type_names_the_field(operator_client, unchanged, field, value):
    unchanged()
    assert_refused(send(operator_client, "POST", AGENTS, registration(**{field: value})), 400, field)


@pytest.mark.parametrize(("field", "value"), _cases(TASK_FIELD_TYPES))
def test_a_task_with_a_wrong_type_names_the_field(operator_client, unchanged, field, value):
    unchanged()
    assert_refused(send(operator_client, "POST", TASKS, task_body(**{field: value})), 400, field)


@pytest.mark.parametrize(("field", "value"), _cases(TASK_FIELD_TYPES))
def test_one_bad_task_in_a_bulk_request_stores_none_of_them(operator_client, unchanged, field, value):
    unchanged()
    body = {"tasks": [task_body(), task_body(), task_body(**{field: value})]}
    errors = assert_refused(send(operator_client, "POST", f"{TASKS}/bulk", body), 400, "tasks")["tasks"]
    # Only the third item is at fault; nothing of the first two was stored either.
    assert list(errors) == ["2"] and field in errors["2"], errors


@pytest.mark.parametrize(("field", "value"), _cases(HEARTBEAT_FIELD_TYPES))
def test_a_heartbeat_with_a_wrong_type_names_the_field(agent_a, unchanged, field, value):
    before = Agent.objects.values().get(pk=agent_a.pk)
    unchanged()
    client = bearer_client(agent_a.token)
    assert_refused(send(client, "POST", f"{AGENTS}/{agent_a.pk}/heartbeat", {field: value}), 400, field)
    after = Agent.objects.values().get(pk=agent_a.pk)
    assert after == before


@pytest.mark.parametrize(("field", "value"), _cases(RESULT_FIELD_TYPES))
def test_a_result_with_a_wrong_type_names_the_field(agent_a, unchanged, field, value):
    running = make_task("running", agent=agent_a)
    unchanged()
    body = {"status": "completed", "result": {"ok": True}, field: value}
    response = send(bearer_client(agent_a.token), "POST", f"{TASKS}/{running.pk}/result", body)
    assert_refused(response, 400, field)
    running.refresh_from_db()
    assert (running.status, running.result) == ("running", None)


def test_assign_with_a_malformed_or_unknown_agent_id_names_it(operator_client, unchanged):
    task = make_task("pending")
    unchanged()
    for agent_id in ("not-a-uuid", 12, [], str(UNKNOWN)):
        body = {"agent_id": agent_id}
        assert_refused(send(operator_client, "POST", f"{TASKS}/{task.pk}/assign", body), 400, "agent_id")
    task.refresh_from_db()
    assert task.status == "pending"


# --- Oversized bodies and strings ----------------------------------------------------------------

OVERSIZED = [
    (AGENTS, registration(type="t" * 101), "type"),
    (AGENTS, registration(name="n" * 201), "name"),
    (AGENTS, registration(endpoint="http://127.0.0.1:9/" + "p" * 2000), "endpoint"),
    (AGENTS, registration(capabilities=["c" * 101]), "capabilities"),
    (AGENTS, registration(capabilities=[f"c{i}" for i in range(1001)]), "capabilities"),
    (AGENTS, registration(metadata={"blob": "m" * (64 * 1024)}), "metadata"),
    (TASKS, task_body(type="t" * 101), "type"),
    (TASKS, task_body(description="d" * 10_001), "description"),
    (TASKS, task_body(required_capabilities=["c" * 101]), "required_capabilities"),
    (TASKS, task_body(required_capabilities=[f"c{i}" for i in range(51)]), "required_capabilities"),
    ("/api/v1/auth/token", {"username": "u" * 151, "password": "p"}, "username"),
    ("/api/v1/auth/token", {"username": "u", "password": "p" * 1025}, "password"),
]


@pytest.mark.parametrize(("path", "body", "field"), OVERSIZED, ids=[f"{p}:{f}" for p, _, f in OVERSIZED])
def test_an_oversized_string_or_list_names_the_field(operator_client, unchanged, path, body, field):
    unchanged()
    assert_refused(send(operator_client, "POST", path, body, REMOTE_ADDR="10.9.9.7"), 400, field)


def test_a_bulk_request_over_the_limit_is_refused(operator_client, unchanged, settings):
    settings.TASK_BULK_MAX = 5
    unchanged()
    body = {"tasks": [task_body() for _ in range(6)]}
    errors = assert_refused(send(operator_client, "POST", f"{TASKS}/bulk", body), 400, "tasks")
    assert "At most 5" in str(errors)


def test_a_body_over_the_upload_limit_is_a_413_in_json_before_any_parsing(operator_client, unchanged):
    """A 16 MiB body (over DATA_UPLOAD_MAX_MEMORY_SIZE, 11 MiB) is refused as too large, not a 500."""
    unchanged()
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 16 * 1024 * 1024
    huge = json.dumps(task_body(input_data={"blob": "x" * (16 * 1024 * 1024)}))
    for path in (TASKS, f"{TASKS}/bulk", AGENTS):
        body = assert_refused(send(operator_client, "POST", path, huge), 413, "detail")
        assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in body["detail"]


# --- NUL characters, lone surrogates ------------------------------------------------------------

NUL_TASKS = [
    ("type", task_body(type="sum\u0000marize")),
    ("description", task_body(description="a\u0000b")),
    ("input_data", task_body(input_data={"q": "a\u0000b"})),
    ("input_data", task_body(input_data={"k\u0000": 1})),
    ("input_data", task_body(input_data={"deep": [{"er": ["\u0000"]}]})),
    ("input_data", task_body(input_data={"q": "\ud800"})),
    ("input_data", task_body(input_data={"\udfff": 1})),
    ("required_capabilities", task_body(required_capabilities=["a\u0000"])),
    ("description", task_body(description="\ud800")),
]
NUL_AGENTS = [
    ("type", registration(type="rag\u0000")),
    ("name", registration(name="a\u0000b")),
    ("endpoint", registration(endpoint="http://127.0.0.1:9/\u0000")),
    ("capabilities", registration(capabilities=["x\u0000"])),
    ("metadata", registration(metadata={"v": "\u0000"})),
    ("metadata", registration(metadata={"\u0000": "v"})),
    ("metadata", registration(metadata={"v": "\ud800"})),
    ("name", registration(name="\udc00")),
]


@pytest.mark.parametrize(("field", "body"), NUL_TASKS + [(f, b) for f, b in NUL_AGENTS])
def test_nul_characters_and_lone_surrogates_are_refused_by_field(operator_client, unchanged, field, body):
    unchanged()
    path = AGENTS if "endpoint" in body else TASKS
    # The body is sent as JSON text with \u escapes, exactly as a client would send it.
    raw = json.dumps(body, ensure_ascii=True)
    assert_refused(send(operator_client, "POST", path, raw), 400, field)


def test_nul_in_a_result_or_heartbeat_metrics_is_refused(agent_a, unchanged):
    running = make_task("running", agent=agent_a)
    unchanged()
    client = bearer_client(agent_a.token)
    for body, field in (
        ({"status": "completed", "result": {"text": "\u0000"}}, "result"),
        ({"status": "failed", "error": {"\u0000": 1}}, "error"),
        ({"status": "completed", "result": "\ud800"}, "result"),
    ):
        raw = json.dumps(body, ensure_ascii=True)
        assert_refused(send(client, "POST", f"{TASKS}/{running.pk}/result", raw), 400, field)
    raw = json.dumps({"metrics": {"gpu": "\u0000"}})
    assert_refused(send(client, "POST", f"{AGENTS}/{agent_a.pk}/heartbeat", raw), 400, "metrics")
    running.refresh_from_db()
    assert running.status == "running"


@pytest.mark.parametrize(
    "query",
    [
        "type=a%00b",
        "status=pend%00ing",
        "search=%00",
        "a%00=1",
        "capability=x%00",
        "ordering=%00",
        "cursor=%00",
    ],
)
def test_nul_in_a_query_string_is_a_400_on_every_list(operator_client, unchanged, query):
    unchanged()
    for path in (AGENTS, TASKS, "/api/v1/capabilities", "/status"):
        assert_refused(operator_client.get(f"{path}?{query}"), 400, "detail")


def test_nul_in_headers_is_refused(operator_client, unchanged):
    # (A real server never lets NUL through in a header; the in-process client does, so the app must.)
    unchanged()
    response = send(operator_client, "POST", TASKS, task_body(), HTTP_IDEMPOTENCY_KEY="key\x00")
    assert_refused(response, 400, "Idempotency-Key")
    mangled = bearer_client(f"{operator_client.raw_token}\x00")
    assert_refused(mangled.get(TASKS), 401, "detail")
    assert_refused(mangled.post(TASKS, task_body(), format="json"), 401, "detail")


def test_nul_and_garbage_in_paths_are_json_404s(operator_client, unchanged):
    unchanged()
    for path in (
        f"{TASKS}/%00",
        f"{AGENTS}/%00/heartbeat",
        f"{TASKS}/{'0' * 36}",
        f"{AGENTS}/not-a-uuid",
        f"{TASKS}/{UNKNOWN}%00/retry",
        "/api/v1/nothing-here",
    ):
        assert_refused(operator_client.get(path), 404, "detail")
        assert_refused(operator_client.post(path), 404, "detail")


# --- Deep nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("opening", ["[", '{"a":'])
@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_ten_thousand_levels_of_nesting_are_a_400(operator_client, unchanged, opening, method, path):
    unchanged()
    closing = "]" if opening == "[" else "}"
    body = opening * 10_000 + "1" + closing * 10_000
    detail = assert_refused(send(operator_client, method, path, body, REMOTE_ADDR="10.9.9.6"), 400, "detail")
    assert "nested too deeply" in detail["detail"]


def _nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def test_nesting_past_the_field_limits_names_the_field(operator_client, agent_a, unchanged):
    running = make_task("running", agent=agent_a)
    unchanged()
    agent = bearer_client(agent_a.token)
    for client, path, body, field in (
        (operator_client, TASKS, task_body(input_data=_nested(40)), "input_data"),
        (operator_client, AGENTS, registration(metadata=_nested(12)), "metadata"),
        (agent, f"{AGENTS}/{agent_a.pk}/heartbeat", {"metrics": _nested(12)}, "metrics"),
        (agent, f"{TASKS}/{running.pk}/result", {"status": "completed", "result": _nested(40)}, "result"),
    ):
        assert_refused(send(client, "POST", path, body), 400, field)


# --- Unknown ids ---------------------------------------------------------------------------------

UNKNOWN_ID_REQUESTS = [
    ("GET", f"{AGENTS}/{UNKNOWN}"),
    ("DELETE", f"{AGENTS}/{UNKNOWN}"),
    ("POST", f"{AGENTS}/{UNKNOWN}/heartbeat"),
    ("POST", f"{AGENTS}/{UNKNOWN}/drain"),
    ("POST", f"{AGENTS}/{UNKNOWN}/resume"),
    ("GET", f"{TASKS}/{UNKNOWN}"),
    ("DELETE", f"{TASKS}/{UNKNOWN}"),
    ("POST", f"{TASKS}/{UNKNOWN}/assign"),
    ("POST", f"{TASKS}/{UNKNOWN}/execute"),
    ("POST", f"{TASKS}/{UNKNOWN}/retry"),
    ("POST", f"{TASKS}/{UNKNOWN}/result"),
]


@pytest.mark.parametrize(("method", "path"), UNKNOWN_ID_REQUESTS)
def test_an_unknown_id_is_a_404(operator_client, agent_a, unchanged, method, path):
    unchanged()
    body = {"status": "completed", "result": 1} if path.endswith("/result") else None
    assert_refused(send(operator_client, method, path, body), 404, "detail")


# --- Illegal state changes -----------------------------------------------------------------------

ILLEGAL = [
    ("completed", "DELETE", "", None),
    ("failed", "DELETE", "", None),
    ("cancelled", "DELETE", "", None),
    ("pending", "POST", "/retry", None),
    ("assigned", "POST", "/retry", None),
    ("running", "POST", "/retry", None),
    ("completed", "POST", "/retry", None),
    ("running", "POST", "/assign", {}),
    ("completed", "POST", "/assign", {}),
    ("cancelled", "POST", "/assign", {}),
    ("cancelled", "POST", "/execute", None),
    ("pending", "POST", "/execute", None),  # no capable agent: it stays pending
    ("pending", "POST", "/result", {"status": "completed", "result": 1}),
    ("completed", "POST", "/result", {"status": "completed", "result": 2}),
    ("failed", "POST", "/result", {"status": "completed", "result": 2}),
    ("cancelled", "POST", "/result", {"status": "failed", "error": "late"}),
]


@pytest.mark.parametrize(("status", "method", "verb", "body"), ILLEGAL)
def test_an_illegal_state_change_is_a_409_and_changes_nothing(
    operator_client, agent_a, unchanged, status, method, verb, body
):
    task = make_task(status, agent=agent_a if status != "pending" else None, required_capabilities=["nobody"])
    before = Task.objects.values().get(pk=task.pk)
    unchanged()
    assert_refused(send(operator_client, method, f"{TASKS}/{task.pk}{verb}", body), 409, "detail")
    assert Task.objects.values().get(pk=task.pk) == before


def test_a_superseded_attempt_cannot_report(agent_a, unchanged):
    task = make_task("running", agent=agent_a, attempts=3)
    unchanged()
    body = {"status": "completed", "result": "stale"}
    response = send(bearer_client(agent_a.token), "POST", f"{TASKS}/{task.pk}/result?attempt=2", body)
    assert_refused(response, 409, "detail")
    task.refresh_from_db()
    assert (task.status, task.result) == ("running", None)
    for attempt in ("-1", "two", "1e3", "%00"):
        response = send(
            bearer_client(agent_a.token), "POST", f"{TASKS}/{task.pk}/result?attempt={attempt}", body
        )
        assert response.status_code == 400


def test_assigning_to_an_agent_that_cannot_take_it_is_a_409(operator_client, agent_a, unchanged):
    task = make_task("pending", required_capabilities=["translate"])
    Agent.objects.filter(pk=agent_a.pk).update(status="draining")
    unchanged()
    assert_refused(
        send(operator_client, "POST", f"{TASKS}/{task.pk}/assign", {"agent_id": str(agent_a.pk)}), 409
    )
    task.refresh_from_db()
    assert task.status == "pending" and task.assigned_agent_id is None


# --- Mass assignment of read-only fields ---------------------------------------------------------

TASK_READ_ONLY = {
    "task_id": str(UNKNOWN),
    "status": "completed",
    "agent_id": str(UNKNOWN),
    "assigned_agent": str(UNKNOWN),
    "result": {"forged": True},
    "error": "forged",
    "attempts": 0,
    "created_at": "2000-01-01T00:00:00Z",
    "finished_at": "2000-01-01T00:00:00Z",
    "lease_expires_at": "2100-01-01T00:00:00Z",
    "next_attempt_at": "2100-01-01T00:00:00Z",
    "idempotency_key": "forged",
    "events": [],
    "created_by": 1,
}
AGENT_READ_ONLY = {
    "agent_id": str(UNKNOWN),
    "status": "online",
    "circuit_state": "closed",
    "current_load": 0,
    "reported_load": 0,
    "consecutive_failures": 0,
    "success_count": 10**6,
    "avg_latency_ms": 1.0,
    "success_rate": 1.0,
    "drained_by_operator": False,
    "last_heartbeat": "2100-01-01T00:00:00Z",
    "heartbeat_expires_at": "2100-01-01T00:00:00Z",
    "token": "aoa_forged",
    "token_hash": "0" * 64,
    "signing_secret": "whsec_forged",
    "created_at": "2000-01-01T00:00:00Z",
}


@pytest.mark.parametrize(("field", "value"), TASK_READ_ONLY.items())
def test_a_task_cannot_be_created_with_a_read_only_field(operator_client, unchanged, field, value):
    unchanged()
    assert_refused(send(operator_client, "POST", TASKS, task_body(**{field: value})), 400, field)
    bulk = {"tasks": [task_body(), task_body(**{field: value})]}
    assert_refused(send(operator_client, "POST", f"{TASKS}/bulk", bulk), 400, "tasks")


@pytest.mark.parametrize(("field", "value"), AGENT_READ_ONLY.items())
def test_an_agent_cannot_be_registered_with_a_read_only_field(operator_client, unchanged, field, value):
    unchanged()
    assert_refused(send(operator_client, "POST", AGENTS, registration(**{field: value})), 400, field)


def test_re_registration_cannot_smuggle_read_only_fields_either(operator_client, agent_a, unchanged):
    before = Agent.objects.values().get(pk=agent_a.pk)
    unchanged()
    body = registration(endpoint=agent_a.endpoint, circuit_state="closed", status="online", current_load=0)
    assert_refused(
        send(operator_client, "POST", AGENTS, body), 400, "circuit_state", "status", "current_load"
    )
    assert Agent.objects.values().get(pk=agent_a.pk) == before


def test_a_heartbeat_cannot_set_what_only_the_orchestrator_decides(agent_a, unchanged):
    """A heartbeat's extra fields are ignored by design (an agent's clock is never trusted); none of them
    may reach the circuit, the orchestrator's own load count or the liveness deadline."""
    Agent.objects.filter(pk=agent_a.pk).update(circuit_state="open", current_load=3, consecutive_failures=5)
    unchanged()
    body = {
        "circuit_state": "closed",
        "consecutive_failures": 0,
        "heartbeat_expires_at": "2100-01-01T00:00:00Z",
        "last_heartbeat": "2100-01-01T00:00:00Z",
        "heartbeat_timeout": 3600,
        "agent_id": str(UNKNOWN),
        "current_load": 0,
    }
    response = send(bearer_client(agent_a.token), "POST", f"{AGENTS}/{agent_a.pk}/heartbeat", body)
    assert response.status_code == 200
    agent = Agent.objects.get(pk=agent_a.pk)
    assert (agent.circuit_state, agent.current_load, agent.consecutive_failures) == ("open", 3, 5)
    assert agent.reported_load == 0  # what the agent says about itself is kept as that
    assert agent.heartbeat_expires_at.year < 2100 and agent.heartbeat_timeout == agent_a.heartbeat_timeout


@pytest.mark.parametrize(
    ("field", "value"),
    [("agent_id", str(UNKNOWN)), ("attempts", 9), ("task_id", str(UNKNOWN)), ("finished_at", "x")],
)
def test_a_result_report_cannot_set_other_fields(agent_a, unchanged, field, value):
    running = make_task("running", agent=agent_a)
    unchanged()
    body = {"status": "completed", "result": 1, field: value}
    response = send(bearer_client(agent_a.token), "POST", f"{TASKS}/{running.pk}/result", body)
    assert_refused(response, 400, field)
    running.refresh_from_db()
    assert running.status == "running"
