"""What one attempt came to, as the agent call (or a report, or the lease sweep) says it."""

import enum
from dataclasses import dataclass
from typing import Any
from uuid import UUID


class OutcomeKind(enum.Enum):
    COMPLETED = "completed"  # a result: the task is done
    ACCEPTED = "accepted"  # 202: the agent will report later; the task runs under a lease
    RETRY = "retry"  # a failure worth another attempt (while the budget and deadline allow)
    FAIL = "fail"  # a failure no retry can fix


@dataclass
class Outcome:
    task_id: UUID
    attempt: int
    agent_id: UUID | None
    kind: OutcomeKind
    result: Any = None
    error: Any = None
    reason: str = ""
    status_code: int | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    # Whether this failure says something about the agent's health (timeouts and 5xx do; 429 does not).
    counts_for_circuit: bool = True
    retire_agent: bool = False  # the agent said 410 Gone
    call_outcome: str = ""  # how the call went, for the metrics: success, timeout, error, ...

    def details(self):
        """What the event row keeps of the call."""
        found = {
            key: value
            for key, value in (("status_code", self.status_code), ("latency_ms", self.latency_ms))
            if value is not None
        }
        return found or None

    def error_value(self):
        """The task's `error` after this failure."""
        if self.error is not None:
            return self.error
        return {"message": self.reason, **({"status_code": self.status_code} if self.status_code else {})}
