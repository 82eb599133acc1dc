"""Django's ASGI handler, with sync views served through a sync middleware chain in one thread hop.

Django's own ASGIHandler runs the middleware chain in async mode. Every sync-only middleware in it then
needs an async->sync adapter, and every MiddlewareMixin in async mode calls its process_request /
process_response through sync_to_async: a trivial API request crossed between the event loop and the
sync thread sixteen times, which cost more than the view itself (docs/benchmarks.md, "Where the time
goes"). Here a sync view gets the whole chain, view included, in a single sync_to_async call.

Those calls run on a small pool of threads (WEB_THREADS) rather than Django's single shared one, so one
request's database round trip or commit no longer idles the process while others wait their turn.
Each call closes its thread's database connection at the end (returning it to the pool), as Django's
request_finished would if it ran on that thread.

Async views (execute's long wait, /health/detailed) keep Django's async path, so waiting on an agent
never holds a thread.
"""

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.dispatch import receiver
from django.urls import Resolver404, resolve

SYNC_VIEW = "orchestrator.sync_view"  # set in the scope of requests for sync views


class OneHopASGIHandler(ASGIHandler):
    def __init__(self):
        super().__init__()  # the async chain, for async views
        self._sync_handler = BaseHandler()
        self._sync_handler.load_middleware(is_async=False)
        self._executor = ThreadPoolExecutor(max_workers=settings.WEB_THREADS, thread_name_prefix="http")
        self._serve_in_thread = sync_to_async(self._serve, thread_sensitive=False, executor=self._executor)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not _is_async_view(_path_info(scope)):
            scope = {**scope, SYNC_VIEW: True}
            # Django wraps each request in a ThreadSensitiveContext, which starts a new thread per request
            # for its thread-sensitive calls (the request_started/finished signals): starting it blocked
            # the event loop for a third of its time. Sync views run on our pool instead; those two
            # calls go to asgiref's one shared thread.
            await self.handle(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _serve(self, request):
        try:
            return self._sync_handler.get_response(request)
        finally:
            close_old_connections()

    async def get_response_async(self, request):
        if request.scope.get(SYNC_VIEW):
            return await self._serve_in_thread(request)
        return await super().get_response_async(request)


def _path_info(scope):
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@lru_cache(maxsize=8192)
def _is_async_view(path):
    # On the event loop, before every request: resolving a deep API path cost the loop more than
    # the rest of its share of a request. Paths repeat (the same agents beat, the same list is read),
    # and which view a path resolves to changes only with the URL configuration (tests swap it).
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False


@receiver(setting_changed)
def _forget_views(setting, **kwargs):
    if setting == "ROOT_URLCONF":
        _is_async_view.cache_clear()
