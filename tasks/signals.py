"""What the tasks app tells the rest of the system (monitoring's notifier listens).

Sent inside the transaction that made the change; receivers that must wait for the commit use
transaction.on_commit.
"""

from django.dispatch import Signal

# Tasks that failed for good. Sent with `failures`: dicts of task_id, type, attempts, reason, error.
tasks_failed = Signal()
