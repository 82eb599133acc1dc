"""Celery jobs of the task engine: thin wrappers that fetch ids and call services.

Messages only wake workers; what to do is always read from Postgres.
"""

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings

from monitoring.beat import record_sweep
from orchestrator_project.heap import freeze_startup_objects
from orchestrator_project.logging import log_context

from . import dispatch, sweeps
from .runner import current_runner, get_runner, load_specs


@shared_task(name="tasks.dispatch_due", ignore_result=True)
def dispatch_due():
    """A delayed wake-up (retries falling due); immediate ones ring the doorbell instead (wake.py)."""
    get_runner().dispatcher.kick()


@worker_ready.connect
def _start_runner(**_):
    # The runner's doorbell must be listening before the first wake-up, not after the first Celery job.
    get_runner()
    freeze_startup_objects()  # a worker is set up once it is ready (orchestrator_project/heap.py)


@shared_task(name="tasks.send_assigned", ignore_result=True)
def send_assigned(task_id, attempt):
    """Send a task that was assigned outside a dispatch round (an operator's assign, or execute)."""
    with log_context(task_id=str(task_id), attempt=attempt):
        dispatch.start_lease(task_id, attempt)
        specs = load_specs([dispatch.Assignment(task_id=task_id, attempt=attempt, agent_id=None)])
        return get_runner().submit(specs)


@shared_task(name="tasks.sweep", ignore_result=True)
def sweep():
    record_sweep("tasks.sweep")
    summary = sweeps.run_sweep()
    get_runner().dispatcher.kick()
    return summary


@worker_shutting_down.connect
def _finish_or_hand_back(**_):
    runner = current_runner()
    if runner is not None:
        runner.shutdown(grace=settings.WORKER_SHUTDOWN_GRACE)
