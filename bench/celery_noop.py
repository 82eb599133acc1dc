"""The raw-Celery baseline: a no-op task on its own app, with the project's Celery settings.

Its worker runs a process per core (prefork) on its own queue, with the project's broker, prefetch and
acks_late, and one publishing process per core feeds it (`publish`): Celery saturating this machine.
The task's only work is one Redis INCR, so the benchmark can see when the last message has been
consumed (there is no result backend, as in the project).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator_project.settings")

app = Celery("bench_noop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = os.environ.get("BENCH_NOOP_QUEUE", "bench-noop")

DONE_KEY = "bench:noop:done"
_redis = None


def publish(count):
    """The code of one publishing process (python -c): set up, say "ready", wait for a line on stdin (so
    start-up is not timed), then publish `count` no-op tasks through one producer connection."""
    return (
        "import sys, django; django.setup()\n"
        "from bench.celery_noop import app, noop\n"
        "with app.producer_or_acquire() as producer:\n"
        "    producer.connection.ensure_connection()\n"
        "    print('ready', flush=True); sys.stdin.readline()\n"
        f"    for _ in range({int(count)}):\n"
        "        noop.apply_async(producer=producer)\n"
    )


@app.task(name="bench.noop", ignore_result=True)
def noop():
    global _redis
    if _redis is None:
        import redis
        from django.conf import settings

        _redis = redis.Redis.from_url(settings.REDIS_URL)
    _redis.incr(DONE_KEY)
