"""The bare-DRF baseline: an ordinary, minimal Django REST framework service, deployed the ordinary way.

What the orchestrator is measured against (bench/scenarios.py): a create endpoint that authenticates a
token, validates a body and inserts one row, served by gunicorn with one sync worker per core; and a
hand-rolled Celery dispatch (a row plus a Celery task whose worker POSTs to the agent). None of the
orchestrator's code is loaded. It shares only the benchmark's database and Redis.
"""

import os

import dj_database_url

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework.authtoken",
    "bench.baseline",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "bench.baseline.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Persistent connections, as any deployed Django service keeps them.
_database = dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=600, conn_health_checks=True)
DATABASES = {
    "default": _database,
    # The orchestrator's heartbeat commits without waiting for the WAL flush (synchronous_commit off):
    # its baseline commits the same way, so the comparison is of the code, not of the disk.
    "relaxed": {
        **_database,
        "OPTIONS": {**_database.get("OPTIONS", {}), "options": "-c synchronous_commit=off"},
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}

CELERY_BROKER_URL = os.environ["REDIS_URL"]
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_BASELINE_QUEUE", "bench-baseline")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TASK_IGNORE_RESULT = True
AGENT_URL = os.environ.get("BENCH_AGENT_URL", "")
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
