"""One ASGI application for HTTP and WebSockets, served by Uvicorn on SERVICE_PORT (process_commands.py).

With several web processes (WEB_CONCURRENCY) each one imports this module itself, so each sets up Django
and freezes its own start-up objects; live events reach every process through the Redis channel layer.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")
django.setup(set_prefix=False)

from orchestrator_project.http_handler import OneHopASGIHandler  # noqa: E402  (needs Django set up)

django_asgi_app = OneHopASGIHandler()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs Django set up)

from monitoring.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})

from django.conf import settings  # noqa: E402

from orchestrator_project.heap import freeze_startup_objects  # noqa: E402

# Last: everything the app needs for its whole life is alive by now. A test run imports this module
# beside its own fixtures, which must stay collectable.
if not settings.TESTING:
    freeze_startup_objects()
