"""`celery -A bench.baseline.celery_app worker`: the baseline's Celery app, with Django set up."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baseline.settings")
django.setup()

from .jobs import app  # noqa: E402, F401  (the app and its one task)
