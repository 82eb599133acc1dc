"""Channels' WebsocketCommunicator, importable without Daphne.

`channels.testing`'s __init__ also imports ChannelsLiveServerTestCase, whose module imports
`daphne.testing` (django/channels#1942, still open), so with Uvicorn serving the web and Daphne not
installed `from channels.testing import WebsocketCommunicator` fails. Then the package is registered
without running its __init__, and Channels' own websocket module (and the application module it builds
on) is imported from it unchanged.
"""

import importlib.util
import sys

try:
    from channels.testing import WebsocketCommunicator
except ModuleNotFoundError as error:
    if error.name != "daphne":
        raise
    _package = importlib.util.module_from_spec(importlib.util.find_spec("channels.testing"))
    sys.modules["channels.testing"] = _package  # __path__ set, __init__ not run
    from channels.testing.websocket import WebsocketCommunicator

__all__ = ["WebsocketCommunicator"]
