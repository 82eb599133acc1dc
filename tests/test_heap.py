"""The web and worker processes freeze what start-up leaves alive, so full collections stay short
(orchestrator_project/heap.py). Each check runs in a fresh interpreter: freezing is per process."""

import os
import subprocess
import sys

from tests.test_embedded_services import REPO


def _run(code, **env):
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.split()


def test_the_web_application_freezes_its_start_up_objects_outside_tests():
    code = "import gc, orchestrator_project.asgi; print(gc.get_freeze_count(), len(gc.get_objects(2)))"
    frozen, old = map(int, _run(code, ORCHESTRATOR_TESTING="false"))
    # Django, DRF and the URL conf: tens of thousands of objects, none left for full collections.
    assert frozen > 50_000
    assert old < 1_000
    # A test run's process keeps its objects collectable.
    assert _run(
        "import gc, orchestrator_project.asgi; print(gc.get_freeze_count())", ORCHESTRATOR_TESTING="true"
    ) == ["0"]


def test_a_worker_freezes_once_it_is_ready():
    code = """
import gc, django
django.setup()
from celery.signals import worker_ready
from tasks import jobs
jobs.get_runner = lambda: None  # the runner's threads are not what this checks
before = gc.get_freeze_count()
worker_ready.send(sender=None)
print(before, gc.get_freeze_count())
"""
    before, after = map(int, _run(code, DJANGO_SETTINGS_MODULE="orchestrator_project.settings"))
    assert before == 0
    assert after > 50_000
