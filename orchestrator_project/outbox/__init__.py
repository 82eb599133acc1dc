"""The transactional outbox: every state change of a task or an agent leaves a row here, written in the
change's own statement, and a relay (relay.py, `manage.py relay_events`) publishes the rows in commit
order to Kafka or a Redis Stream. docs/events.md is the consumer's side of it.

A Django app in the neutral layer, so that agents and tasks write to it without importing anything above
them: writer.py is all they use.
"""
