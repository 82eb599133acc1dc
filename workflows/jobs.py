"""Celery jobs of the workflow engine: thin wrappers around its functions."""

from celery import shared_task

from . import advancing


@shared_task(name="workflows.expire_approvals", ignore_result=True)
def expire_approvals():
    """Apply the default decision of approvals whose timeout passed (run by the beat)."""
    return advancing.expire_approvals()
