"""The raw-Celery baseline: a no-op task on its own app, with the project's Celery settings.

The worker for it runs exactly like the orchestrator's (`--pool threads`, same concurrency, same broker,
prefetch and acks_late), on its own queue. The task's only work is one Redis INCR, so the benchmark can
see when the last message has been consumed (there is no result backend, as in the project).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

app = Celery("bench_noop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = os.environ.get("BENCH_NOOP_QUEUE", "bench-noop")

DONE_KEY = "bench:noop:done"
_redis = None


@app.task(name="bench.noop", ignore_result=True)
def noop():
    global _redis
    if _redis is None:
        import redis
        from django.conf import settings

        _redis = redis.Redis.from_url(settings.REDIS_URL)
    _redis.incr(DONE_KEY)
