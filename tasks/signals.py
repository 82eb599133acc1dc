"""What the tasks app tells the rest of the system (monitoring's notifier listens).

Sent inside the transaction that made the change; receivers that must wait for the commit use
transaction.on_commit.
"""

from django.dispatch import Signal

# Tasks that failed for good. Sent with `failures`: dicts of task_id, type, attempts, reason, error.
tasks_failed = Signal()

# Tasks that belong to a workflow step (Task.workflow_step_id) and reached a terminal status, inside
# the transaction of the move. Sent with `ended`: EndedStepTask tuples (transitions.py). The workflows
# app advances its runs on it, in the same transaction.
step_tasks_ended = Signal()
