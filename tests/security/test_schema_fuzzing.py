"""Schemathesis against the published OpenAPI schema, authenticated as an operator.

Every operation of /api/schema/ is called in-process through the real ASGI application (the one Uvicorn
serves) with generated valid and invalid data: schemathesis' coverage phase (boundary and type-mutation
cases) and its fuzzing phase (MAX_EXAMPLES random cases per mode). Each answer must not be a server
error, must carry a documented status code and content type and match the documented response schema,
and invalid data must be refused with a 4xx. Generation is derandomized, so a run is repeatable.
"""

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from agents.models import Agent
from orchestrator_project.accounts.models import ApiToken, hash_token, new_raw_token
from tasks.models import Task, TaskStatus
from tests.actors import make_user
from tests.security.conftest import LOOPBACK_ONLY

MAX_EXAMPLES = 20
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "security-fuzzing.json"

# Known objects, so that generated requests reach more than "404 unknown id".
AGENT_ID = uuid.UUID("00000000-0000-4000-8000-00000000a9e1")
PENDING_TASK_ID = uuid.UUID("00000000-0000-4000-8000-0000000074a1")
RUNNING_TASK_ID = uuid.UUID("00000000-0000-4000-8000-0000000074a2")
COMPLETED_TASK_ID = uuid.UUID("00000000-0000-4000-8000-0000000074a3")
KNOWN_IDS = {"agent_id": [AGENT_ID], "task_id": [PENDING_TASK_ID, RUNNING_TASK_ID, COMPLETED_TASK_ID]}

# /execute answers 502 (the agent failed) and 504 (still running) by design, as documented.
GATEWAY_ANSWERS = {502, 504}

# What ran, for the last test and docs/security.md.
TALLY = {"requests": 0, "server_errors": 0, "by_operation": {}, "by_phase": {}, "statuses": {}}


def not_a_server_error(ctx, response, case):
    """schemathesis' own check, except for the gateway answers an operation documents."""
    documented = set(case.operation.responses.status_codes)
    gateway = response.status_code in GATEWAY_ANSWERS and str(response.status_code) in documented
    if response.status_code >= 500 and not gateway:
        raise ServerError(operation=case.operation.label, status_code=response.status_code)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _load_schema():
    # Loaded at collection, as schemathesis wants (its fixture-based loader does not run under pytest 9):
    # the schema view touches no database, so this needs only the configured Django.
    from orchestrator_project.asgi import application

    # Bulk creation shares its item schema with POST /api/v1/tasks, whose boundary cases are covered; its
    # own coverage phase would add ~400 near-identical requests, so it is fuzzed only.
    config = schemathesis.Config.from_dict(
        {"operations": [{"include-path": "/api/v1/tasks/bulk", "phases": {"coverage": {"enabled": False}}}]}
    )
    loaded = schemathesis.openapi.from_asgi("/api/schema/?format=json", application, config=config)
    loaded.config.generation.update(max_examples=MAX_EXAMPLES, with_security_parameters=False)
    return loaded


schema = _load_schema()


@schema.hook("flatmap_path_parameters")
def _known_ids_sometimes(ctx, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    choices = [st.just(path_parameters)]
    for name, ids in KNOWN_IDS.items():
        if name in path_parameters:
            choices += [st.just({**path_parameters, name: str(known)}) for known in ids]
    return st.one_of(choices)


@pytest.fixture
def world(transactional_db, settings, hermetic_dns):
    """An operator's token, an agent and tasks in each interesting state, committed for the app's threads."""
    # Fuzzed endpoints may only point at loopback: discovery would otherwise call whatever was generated.
    settings.AGENT_ALLOWED_NETWORKS = LOOPBACK_ONLY
    # /execute waits for a worker that this module does not run: keep that wait short.
    settings.EXECUTE_MAX_WAIT_SECONDS = 0.2
    _, token = ApiToken.issue(user=make_user("fuzz-operator", group="operators"))
    now = timezone.now()
    agent = Agent.objects.create(
        agent_id=AGENT_ID,
        type="fuzz",
        name="fuzz agent",
        endpoint="http://127.0.0.1:9/fuzz",
        capabilities=["summarize"],
        token_hash=hash_token(new_raw_token("aoa_")),
        signing_secret="whsec_" + "A" * 44,
        status="offline",
    )
    common = {"type": "summarize", "required_capabilities": ["summarize"]}
    Task.objects.create(task_id=PENDING_TASK_ID, **common)
    Task.objects.create(
        task_id=RUNNING_TASK_ID,
        status=TaskStatus.RUNNING,
        assigned_agent=agent,
        attempts=1,
        lease_expires_at=now + timedelta(hours=1),
        **common,
    )
    Task.objects.create(
        task_id=COMPLETED_TASK_ID,
        status=TaskStatus.COMPLETED,
        result={"answer": 42},
        attempts=1,
        finished_at=now,
        **common,
    )
    return {"Authorization": f"Bearer {token}"}


def _count(case, response):
    TALLY["requests"] += 1
    TALLY["server_errors"] += response.status_code >= 500 and response.status_code not in GATEWAY_ANSWERS
    label = case.operation.label
    TALLY["by_operation"][label] = TALLY["by_operation"].get(label, 0) + 1
    phase = f"{case.meta.phase.name}/{case.meta.generation.mode.value}"
    TALLY["by_phase"][phase] = TALLY["by_phase"].get(phase, 0) + 1
    status = str(response.status_code)
    TALLY["statuses"][status] = TALLY["statuses"].get(status, 0) + 1


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_conforms_to_its_schema(case, world):
    response = case.call(headers=world)
    _count(case, response)
    case.validate_response(response, checks=CHECKS, headers=world)


def test_every_operation_was_exercised_without_a_server_error():
    """Runs after the fuzzing above (same module, file order) and records what it did."""
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(TALLY, indent=2, sort_keys=True))
    operations = {op.label for op in (result.ok() for result in schema.get_all_operations())}
    assert set(TALLY["by_operation"]) == operations
    assert min(TALLY["by_operation"].values()) >= 10
    assert TALLY["server_errors"] == 0
