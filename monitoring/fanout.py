"""One subscription per process and group, shared by every live socket of that process.

With a group membership per socket, each transition batch was deserialised, filtered, converted and
JSON-encoded once per connected client: 500 dashboards at 100 transitions/s kept the web process busy
and delivery fell seconds behind (docs/benchmarks.md). Here a process joins each group once; every
FLUSH_INTERVAL_SECONDS the hub encodes each event once and builds one frame per distinct filter, which
all sockets with that filter share; a socket only sends the text.

A socket's frames wait until it has sent its snapshot (the protocol promises the snapshot first); it
joins before reading the snapshot, so a change committed meanwhile arrives after it, never lost. A
snapshot a client asks for later holds the socket's frames the same way while it is read.
"""

import asyncio
import json
import logging
import time
import weakref

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Events arriving within this window share one frame: hundreds of transitions per second cost each
# client about ten frames per second.
FLUSH_INTERVAL_SECONDS = 0.1
# The window's buffer is bounded (Redis replaying a backlog): past this, keep the latest event per id.
MAX_BUFFERED_EVENTS = 5000

_hubs = weakref.WeakKeyDictionary()  # event loop -> {group: Hub}; a server has one loop, tests many


def hub_for(group):
    hubs = _hubs.setdefault(asyncio.get_running_loop(), {})
    hub = hubs.get(group)
    if hub is None:
        hub = hubs[group] = Hub(group)
    return hub


def _latest_key(event):
    """What a later event replaces: the same task's, agent's, or workflow run's (or run step's)."""
    if "task_id" in event and "run_id" not in event:
        return event["task_id"]
    if "run_id" in event:
        return (event["run_id"], event.get("step_id"))
    return event.get("agent_id")


class Hub:
    def __init__(self, group):
        self.group = group
        self.members = {}  # socket -> frames held back until its snapshot is out (None once it is)
        self._buffer = []
        self._flush_task = None
        self._last_flush = 0.0
        self._listener = None
        self._subscribed = asyncio.Event()

    async def join(self, socket):
        """Start collecting frames for `socket`; they are held until `ready(socket)`."""
        self.members[socket] = []
        if self._listener is None:
            self._listener = asyncio.ensure_future(self._listen())
        await self._subscribed.wait()

    def hold(self, socket):
        """Hold `socket`'s frames again (a fresh snapshot is being read for it) until `ready(socket)`."""
        if socket in self.members and self.members[socket] is None:
            self.members[socket] = []

    async def ready(self, socket):
        held = self.members.get(socket)
        if held is None:
            return
        self.members[socket] = None
        for frame in held:
            await socket.send(text_data=frame)

    def leave(self, socket):
        self.members.pop(socket, None)

    async def _listen(self):
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._subscribed.set()
        while True:
            try:
                message = await layer.receive(channel)
            except Exception:  # the layer reconnects by itself; live updates are best effort
                logger.warning("live %s stream: receive failed", self.group, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            self._add(message.get("events") or [])

    def _add(self, events):
        self._buffer.extend(events)
        if len(self._buffer) > MAX_BUFFERED_EVENTS:
            latest = {}
            for event in self._buffer:
                key = _latest_key(event)
                latest.pop(key, None)
                latest[key] = event
            self._buffer = list(latest.values())
        if self._buffer and self._flush_task is None:
            # The first event after a quiet spell goes out at once; a burst waits for the next tick.
            delay = max(0.0, self._last_flush + FLUSH_INTERVAL_SECONDS - time.monotonic())
            self._flush_task = asyncio.ensure_future(self._flush_after(delay))

    async def _flush_after(self, delay):
        if delay:
            await asyncio.sleep(delay)
        self._flush_task = None
        self._last_flush = time.monotonic()
        events, self._buffer = self._buffer, []
        if not events or not self.members:
            return
        sockets = list(self.members)
        encoded = [(event, json.dumps(sockets[0].to_message(event))) for event in events]
        frames = {}  # filter -> frame text ("" when nothing matches)
        for socket in sockets:
            frame = frames.get(socket.filter_key)
            if frame is None:
                parts = [text for event, text in encoded if socket.matches(event)]
                frame = '{"type": "batch", "events": [' + ", ".join(parts) + "]}" if parts else ""
                frames[socket.filter_key] = frame
            if not frame:
                continue
            held = self.members.get(socket, ())
            if held is None:
                try:
                    await socket.send(text_data=frame)
                except Exception:  # a socket closing under us; its disconnect removes it
                    logger.debug("could not send a live frame", exc_info=True)
            else:
                held.append(frame)
