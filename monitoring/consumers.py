"""Live task and agent streams for the dashboard and for programs.

Protocol (both endpoints): every frame is one JSON object.
- First, right after the handshake: `{"type": "snapshot", "tasks"|"agents": [...], "timestamp"}`,
  the current state matching the filters, so a client that (re)connects is never stale.
- Then `{"type": "batch", "events": [...]}`, where each event is
  `{"type": "task.status", "task_id", "status", "agent_id", "attempt", "priority", "timestamp", ...}`
  (or `{"type": "agent.status", "agent_id", "status", "current_load", "max_concurrency",
  "circuit_state", "timestamp", ...}`), oldest first. Events arriving within
  fanout.FLUSH_INTERVAL_SECONDS of each other share one frame, so hundreds of transitions per second
  cost a browser ~10 frames; the frames are built once per process and filter (monitoring/fanout.py).

Filters, from the query string: `task_id` / `agent_id` and `status`, each repeatable or comma-separated.
Close codes: 4401 not authenticated, 4403 not allowed (agents, users without a role), 4400 bad filter.
"""

import uuid
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import timezone

from agents.models import AgentStatus
from orchestrator_project.accounts.roles import is_agent, is_viewer
from orchestrator_project.live import AGENTS_GROUP, TASKS_GROUP
from tasks.models import TaskStatus

from . import queries
from .fanout import hub_for

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_FILTER = 4400


def can_watch(user):
    """Viewers and above, and staff (who are given the dashboard); never agents."""
    if not user or not user.is_authenticated or is_agent(user) or not user.is_active:
        return False
    return user.is_staff or is_viewer(user)


def _values(query, name):
    return [value for item in query.get(name, []) for value in item.split(",") if value]


class _LiveConsumer(AsyncJsonWebsocketConsumer):
    group = ""
    id_key = ""
    items_key = ""
    event_type = ""
    statuses = ()
    snapshot_query = None

    async def connect(self):
        self._hub = None
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            return await self._refuse(CLOSE_UNAUTHENTICATED)
        if not await database_sync_to_async(can_watch)(user):
            return await self._refuse(CLOSE_FORBIDDEN)
        try:
            self.ids, self.wanted_statuses = self._parse_filters()
        except ValueError:
            return await self._refuse(CLOSE_BAD_FILTER)
        self.filter_key = (frozenset(self.ids), frozenset(self.wanted_statuses))
        # Join before reading the snapshot: a change committed meanwhile arrives after it, never lost.
        self._hub = hub_for(self.group)
        await self._hub.join(self)
        await self.accept()
        items = await database_sync_to_async(self.snapshot)()
        await self.send_json(
            {"type": "snapshot", self.items_key: items, "timestamp": timezone.now().isoformat()}
        )
        await self._hub.ready(self)

    async def _refuse(self, code):
        # Accept then close, so that the client sees why (a refused handshake only says 403).
        await self.accept()
        await self.close(code=code)

    def _parse_filters(self):
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        ids = {str(uuid.UUID(value)) for value in _values(query, self.id_key)}
        statuses = set(_values(query, "status"))
        if not statuses <= set(self.statuses):
            raise ValueError("unknown status")
        return ids, statuses

    async def disconnect(self, code):
        if self._hub is not None:
            self._hub.leave(self)

    def snapshot(self):
        return self.snapshot_query(ids=self.ids, statuses=self.wanted_statuses)

    def to_message(self, event):
        message = dict(event)
        message["type"] = self.event_type
        return message

    def matches(self, event):
        if self.ids and str(event.get(self.id_key)) not in self.ids:
            return False
        return not self.wanted_statuses or event.get("status") in self.wanted_statuses


class TaskStatusConsumer(_LiveConsumer):
    group = TASKS_GROUP
    id_key = "task_id"
    items_key = "tasks"
    event_type = "task.status"
    statuses = tuple(TaskStatus.values)
    snapshot_query = staticmethod(queries.task_snapshot)

    def to_message(self, event):
        message = {key: value for key, value in event.items() if key != "type"}
        # The transition's `type` is the task's type; on the wire `type` names the message.
        message["task_type"] = event.get("type", "")
        message["type"] = self.event_type
        return message


class AgentStatusConsumer(_LiveConsumer):
    group = AGENTS_GROUP
    id_key = "agent_id"
    items_key = "agents"
    event_type = "agent.status"
    statuses = tuple(AgentStatus.values)
    snapshot_query = staticmethod(queries.agent_snapshot)
