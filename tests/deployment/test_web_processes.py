"""Several web processes behind one port (WEB_CONCURRENCY, as `make run` and the image run them): a live
event reaches every WebSocket, whichever of the processes holds it and whichever process the event
came from (the web process that created the task, the worker that ran it)."""

import signal

import psutil
import pytest

from .conftest import EventStream, issue_token
from .test_several_instances import create_tasks

pytestmark = pytest.mark.slow


def holder(web, stream):
    """The pid of the Uvicorn worker process holding the server side of `stream`'s connection."""
    for process in psutil.Process(web.proc.pid).children():
        for connection in process.net_connections("tcp"):
            if connection.raddr and connection.raddr.port == stream.local_port:
                return process.pid
    raise AssertionError(f"no process of {web.name} holds the WebSocket from port {stream.local_port}")


def test_live_events_reach_the_sockets_of_every_web_process(deployment, gated_agents):
    gated_agents(1, max_concurrency=5).open()  # answers at once
    operator, viewer = issue_token("olivia-operator", "operators"), issue_token("victor-viewer", "viewers")
    web = deployment.web("web", WEB_CONCURRENCY=2)
    deployment.worker("worker-1")
    deployment.wait_until_ready()
    streams = [EventStream(web.port, viewer)]
    first = psutil.Process(holder(web, streams[0]))
    try:
        # Which process accepts a connection is up to the kernel; with the first one's holder stopped,
        # only the other can take the next.
        first.send_signal(signal.SIGSTOP)
        try:
            streams.append(EventStream(web.port, viewer))
        finally:
            first.send_signal(signal.SIGCONT)
        assert holder(web, streams[1]) != first.pid

        ids = set(create_tasks(web, operator, 3))
        for number, stream in enumerate(streams):
            stream.wait_for(
                lambda s: ids <= s.seen("completed"), 30, f"socket {number} to see every task complete"
            )
            assert ids <= stream.seen("pending")  # created in one web process: told in both
    finally:
        for stream in streams:
            stream.close()
