"""Loopback HTTP servers for tests: fake agents and other endpoints outside the system."""

import threading
from http.server import ThreadingHTTPServer


def serve_in_background(handler):
    """A ThreadingHTTPServer on a free loopback port, serving from a daemon thread until `shutdown()`.

    `shutdown()` waits for the serving loop to notice, which it checks every poll_interval: the default
    0.5 s cost each test about a quarter of a second per server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
