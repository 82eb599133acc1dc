"""Telling an agent that a task it holds was cancelled: `POST {endpoint}/cancel`, signed like /execute.

Best effort, by design. The task is cancelled in Postgres whatever the agent answers: its slot is free
already, and the attempt number fences off anything the agent reports later. The notice only lets the
agent stop work nobody wants any more (a long model call, a job it accepted with 202). It is sent once,
from the worker's event loop (a worker thread never waits on an agent); an agent that does not implement
it (404, 405, 501) is answered by silence, and any other failure is logged. docs/agent-protocol.md.
"""

import json
import logging
from dataclasses import dataclass
from uuid import UUID

import aiohttp
from django.conf import settings

from agents.models import Agent
from orchestrator_project import egress
from orchestrator_project.signing import signed_headers

logger = logging.getLogger(__name__)

NOTICE_TIMEOUT_SECONDS = 10
NOT_IMPLEMENTED = {404, 405, 501}


@dataclass(frozen=True, slots=True)
class CancelNotice:
    task_id: UUID
    attempt: int
    endpoint: str
    signing_secret: str
    reason: str

    @property
    def body(self):
        return {"task_id": str(self.task_id), "attempt": self.attempt, "reason": self.reason}


def notice_for(*, task_id, attempt, agent_id, reason):
    """The notice for the agent that held the task, or None if that agent is gone."""
    found = Agent.objects.filter(agent_id=agent_id).values_list("endpoint", "signing_secret").first()
    if found is None:
        return None
    endpoint, secret = found
    return CancelNotice(UUID(str(task_id)), attempt, endpoint, secret, reason)


async def send(client, notice):
    """Send the notice once; returns the agent's HTTP status, or None if it could not be delivered."""
    body = json.dumps(notice.body, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": f"agent-orchestrator/{settings.VERSION}",
        **signed_headers(notice.signing_secret, body),
    }
    try:
        response = await egress.request(
            client,
            "POST",
            f"{notice.endpoint.rstrip('/')}/cancel",
            headers=headers,
            content=body,
            timeout=NOTICE_TIMEOUT_SECONDS,
            connect_timeout=min(settings.AGENT_CONNECT_TIMEOUT, NOTICE_TIMEOUT_SECONDS),
            max_bytes=64 * 1024,  # the answer is read (and dropped) up to this; a larger one is logged
        )
    except (egress.EgressRefused, egress.ResponseTooLarge, TimeoutError, aiohttp.ClientError, OSError) as exc:
        logger.warning("could not tell the agent about the cancel: %s: %s", type(exc).__name__, exc)
        return None
    status = response.status_code
    if not 200 <= status < 300 and status not in NOT_IMPLEMENTED:
        logger.warning("the agent answered HTTP %s to the cancel notice", status)
    return status
