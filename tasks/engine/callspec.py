"""Everything one attempt's call to its agent needs, read in the statement that assigns the task."""

import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.conf import settings

# What a call is built from: name -> SQL expression over the task (t) and its agent (a). The assigning
# UPDATE returns these (claim.py), and a later send reads them with the same expressions.
CALL_COLUMNS = {
    "task_id": "t.task_id",
    "attempt": "t.attempts",
    "agent_id": "t.assigned_agent_id",
    "type": "t.type",
    "description": "t.description",
    "input_data": "t.input_data",
    "required_capabilities": "t.required_capabilities",
    "priority": "t.priority",
    "deadline": "t.deadline",
    "timeout_seconds": "t.timeout_seconds",
    # The agent's Idempotency-Key: the task id, or for a workflow step's task its stable key
    # run:step:index:attempt (the same across the task's own retries and reassignments).
    "idempotency_key": "CASE WHEN t.workflow_step_id IS NULL THEN t.task_id::text ELSE t.idempotency_key END",
    "endpoint": "a.endpoint",
    "signing_secret": "a.signing_secret",
}
CALL_EXPRESSIONS = tuple(CALL_COLUMNS.values())


@dataclass(frozen=True, slots=True)
class CallSpec:
    task_id: UUID
    attempt: int
    agent_id: UUID
    endpoint: str
    signing_secret: str
    timeout_seconds: int
    body: dict  # the JSON body of `POST {endpoint}/execute` (docs/agent-protocol.md)
    idempotency_key: str  # the agent's Idempotency-Key header

    @classmethod
    def from_row(cls, row):
        """From a row of CALL_EXPRESSIONS, in that order."""
        column = dict(zip(CALL_COLUMNS, row, strict=True))
        return cls(
            task_id=column["task_id"],
            attempt=column["attempt"],
            agent_id=column["agent_id"],
            endpoint=column["endpoint"],
            signing_secret=column["signing_secret"],
            timeout_seconds=column["timeout_seconds"],
            body=_body(column),
            idempotency_key=column["idempotency_key"],
        )


def _body(column):
    deadline = column["deadline"]
    task_id, attempt = column["task_id"], column["attempt"]
    return {
        "task_id": str(task_id),
        "type": column["type"],
        "description": column["description"],
        "input_data": json.loads(column["input_data"]),  # Django's connection leaves jsonb as text
        "required_capabilities": list(column["required_capabilities"]),
        "priority": column["priority"],
        "attempt": attempt,
        "deadline": deadline.isoformat() if isinstance(deadline, datetime) else None,
        # The attempt in the URL fences the report: a superseded attempt's callback changes nothing.
        "callback_url": f"{settings.PUBLIC_BASE_URL}/api/v1/tasks/{task_id}/result?attempt={attempt}",
    }
