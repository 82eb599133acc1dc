"""Live task and agent streams for the dashboard and for programs.

Protocol (both endpoints): every frame is one JSON object.
- First, right after the handshake: `{"type": "snapshot", "tasks"|"agents": [...], "timestamp"}`,
  the current state matching the filters, so a client that (re)connects is never stale. A task snapshot
  also says `complete_after` (see queries.task_snapshot). With `counts=true` in the query string it also
  has `counts`, {status: number} of everything matching the filters, read in the same database
  transaction as the rows: the two describe one instant.
- Then `{"type": "batch", "events": [...]}`, where each event is
  `{"type": "task.status", "task_id", "status", "agent_id", "attempt", "priority", "timestamp", ...}`
  (or `{"type": "agent.status", "agent_id", "status", "current_load", "max_concurrency",
  "circuit_state", "timestamp", ...}`), oldest first. Events arriving within
  fanout.FLUSH_INTERVAL_SECONDS of each other share one frame, so hundreds of transitions per second
  cost a browser ~10 frames; the frames are built once per process and filter (monitoring/fanout.py).
- The client may send `{"type": "snapshot"}` to get a fresh snapshot, at most one per
  SNAPSHOT_MIN_INTERVAL_SECONDS (later requests wait their turn and are served once). Every frame sent
  before it reflects a change the snapshot includes; frames after it may repeat changes it includes
  (an event is older than the snapshot's row for its id then). Anything else sent gets an
  `{"type": "error", "detail"}` frame.

Filters, from the query string: `task_id` / `agent_id` and `status`, each repeatable or comma-separated;
`counts=true`. Close codes: 4401 not authenticated, 4403 not allowed (agents, users without a role),
4400 bad filter.
"""

import asyncio
import json
import logging
import time
import uuid
from contextlib import contextmanager
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connection, transaction
from django.utils import timezone

from agents.models import AgentStatus
from orchestrator_project.accounts.roles import is_viewer
from orchestrator_project.live import AGENTS_GROUP, TASKS_GROUP, WORKFLOW_RUNS_GROUP
from tasks.models import TaskStatus

from . import queries, workflow_live
from .fanout import hub_for

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_FILTER = 4400
# Counting by status reads a whole index: a client asking for snapshots in a loop must not make the
# database do that in a loop.
SNAPSHOT_MIN_INTERVAL_SECONDS = 1.0
UNKNOWN_MESSAGE = 'Unknown message: send {"type": "snapshot"} to get a fresh snapshot.'

logger = logging.getLogger(__name__)


def can_watch(user):
    """Viewers and above; never agents, nor staff without a role."""
    return is_viewer(user)


def _values(query, name):
    return [value for item in query.get(name, []) for value in item.split(",") if value]


@contextmanager
def _one_instant():
    """Rows and counts read in one REPEATABLE READ transaction, so they describe the same instant."""
    outer = connection.in_atomic_block  # inside a transaction already (tests): its snapshot rules
    with transaction.atomic():
        if not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


class _LiveConsumer(AsyncJsonWebsocketConsumer):
    group = ""
    id_key = ""
    event_type = ""
    statuses = ()
    snapshot_query = None
    count_query = None

    async def connect(self):
        self._hub = None
        self._refresher = None
        self._snapshot_wanted = False
        self._last_snapshot = float("-inf")
        user = self.scope.get("user")
        if not user or not user.is_authenticated:
            return await self._refuse(CLOSE_UNAUTHENTICATED)
        if not await database_sync_to_async(can_watch)(user):
            return await self._refuse(CLOSE_FORBIDDEN)
        try:
            self.ids, self.wanted_statuses, self.with_counts = self._parse_filters()
        except ValueError:
            return await self._refuse(CLOSE_BAD_FILTER)
        self.filter_key = (frozenset(self.ids), frozenset(self.wanted_statuses))
        # Join before reading the snapshot: a change committed meanwhile arrives after it, never lost.
        self._hub = hub_for(self.group)
        await self._hub.join(self)
        await self.accept()
        await self._send_snapshot()

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
        counts = _values(query, "counts")
        if counts not in ([], ["true"]):
            raise ValueError("counts must be true")
        return ids, statuses, bool(counts)

    async def disconnect(self, code):
        if self._refresher is not None:
            self._refresher.cancel()
        if self._hub is not None:
            self._hub.leave(self)

    @classmethod
    async def decode_json(cls, text_data):
        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("type") != "snapshot":
            await self.send_json({"type": "error", "detail": UNKNOWN_MESSAGE})
            return
        self._snapshot_wanted = True
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh())

    async def _refresh(self):
        # Requests that arrive while one waits or runs are served by the next snapshot, not one each.
        while self._snapshot_wanted:
            wait = self._last_snapshot + SNAPSHOT_MIN_INTERVAL_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._snapshot_wanted = False
            await self._send_snapshot()

    async def _send_snapshot(self):
        # Live frames wait while the snapshot is read: one delivered before the read began is in it.
        self._hub.hold(self)
        self._last_snapshot = time.monotonic()
        try:
            body = await database_sync_to_async(self.snapshot)()
        except Exception:  # the database is away: say so, and keep the stream going
            logger.warning("live %s stream: snapshot failed", self.group, exc_info=True)
            await self.send_json({"type": "error", "detail": "The snapshot could not be read; ask again."})
        else:
            await self.send_json({"type": "snapshot", **body, "timestamp": timezone.now().isoformat()})
        await self._hub.ready(self)

    def snapshot(self):
        with _one_instant():
            body = self.snapshot_query(ids=self.ids, statuses=self.wanted_statuses)
            if self.with_counts:
                body["counts"] = self.count_query(ids=self.ids, statuses=self.wanted_statuses)
        return body

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
    event_type = "task.status"
    statuses = tuple(TaskStatus.values)
    snapshot_query = staticmethod(queries.task_snapshot)
    count_query = staticmethod(queries.task_counts)

    def to_message(self, event):
        message = {key: value for key, value in event.items() if key != "type"}
        # The transition's `type` is the task's type; on the wire `type` names the message.
        message["task_type"] = event.get("type", "")
        message["type"] = self.event_type
        return message


class AgentStatusConsumer(_LiveConsumer):
    group = AGENTS_GROUP
    id_key = "agent_id"
    event_type = "agent.status"
    statuses = tuple(AgentStatus.values)
    snapshot_query = staticmethod(lambda **filters: {"agents": queries.agent_snapshot(**filters)})
    count_query = staticmethod(queries.agent_counts)


class WorkflowRunConsumer(_LiveConsumer):
    """`/ws/workflow-runs/`: the snapshot is `{"runs": [...]}` (workflow_live.run_snapshot), then batches
    of `workflow_run.status` and `workflow_run.step` events (live/messages.py). Filter: `run_id`
    (repeatable); a status filter is refused (4400): a run's steps have statuses of their own."""

    group = WORKFLOW_RUNS_GROUP
    id_key = "run_id"
    statuses = ()
    snapshot_query = staticmethod(workflow_live.run_snapshot)

    def to_message(self, event):
        return event  # each says its own type: a run's status or a step's

    def snapshot(self):
        with _one_instant():
            return self.snapshot_query(ids=self.ids)
