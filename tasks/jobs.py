"""Celery jobs of the task engine: thin wrappers that fetch ids and call services.

Messages only wake workers; what to do is always read from Postgres.
"""

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings

from orchestrator_project.heap import freeze_startup_objects
from orchestrator_project.logging import log_context

from .engine import cancel_notice, claim, sweeps
from .engine.runner import current_runner, get_runner


@worker_ready.connect
def _start_runner(**_):
    # The runner's bell must be listening before the first ring, not after the first Celery job.
    get_runner()
    freeze_startup_objects()  # a worker is set up once it is ready (orchestrator_project/heap.py)


@shared_task(name="tasks.send_assigned", ignore_result=True)
def send_assigned(task_id, attempt):
    """Send a task that was assigned outside a dispatch round (an operator's assign, or execute)."""
    with log_context(task_id=str(task_id), attempt=attempt):
        spec = claim.start_assigned(task_id, attempt)
        return get_runner().submit([spec] if spec else [])


@shared_task(name="tasks.tell_agent_cancelled", ignore_result=True)
def tell_agent_cancelled(task_id, attempt, agent_id, reason):
    """Tell the agent that held a task that it was cancelled (best effort: engine/cancel_notice.py)."""
    with log_context(task_id=str(task_id), attempt=attempt):
        notice = cancel_notice.notice_for(task_id=task_id, attempt=attempt, agent_id=agent_id, reason=reason)
        if notice is not None:
            get_runner().tell_cancelled(notice)


@shared_task(name="tasks.sweep", ignore_result=True)
def sweep():
    return sweeps.run_sweep()


@worker_shutting_down.connect
def _finish_or_hand_back(**_):
    runner = current_runner()
    if runner is not None:
        runner.shutdown(grace=settings.WORKER_SHUTDOWN_GRACE)
