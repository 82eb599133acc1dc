"""What the agents app tells the rest of the system. It imports nobody above it: the task engine and
monitoring connect receivers in their AppConfig.ready().

Receivers run synchronously, inside the transaction that made the change, so work handed back by a
receiver commits or rolls back with the agent's change; whatever must wait for the commit schedules
itself with transaction.on_commit (a NOTIFY sent inside the transaction is delivered on commit too).
"""

from django.dispatch import Signal

# Agents that lost the work they held: taken offline (heartbeat expired, an operator) or about to be
# deleted. Sent with `agent_ids` and `reason`, before the agents' rows are deleted.
work_lost = Signal()

# Agents that can take work again: back online, or their circuit reset by an operator. Sent with
# `agent_ids`.
capacity_freed = Signal()

# Agents whose status moved. Sent with `changes`: agents.changes.Change objects, `moved` all true.
status_changed = Signal()

# An agent was unregistered (deleted). Sent with `agent_id`, `name`, `old_status` and `at`.
unregistered = Signal()
