"""The outbox's tables: the events themselves, and the sequence counters of entities without one.

Column names follow Debezium's outbox event router (id, aggregatetype, aggregateid, type, payload), so the
table can also be streamed by Debezium instead of our relay.
"""

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models.functions import Now


class TransactionIdField(models.Field):
    """PostgreSQL's xid8: the 64-bit id of the transaction that wrote the row (never wraps around)."""

    def db_type(self, connection):
        return "xid8"


class OutboxEvent(models.Model):
    # The order rows were written in, within one transaction (the relay orders by txid, then this).
    position = models.BigAutoField(primary_key=True)
    # The event's id, unique for ever: CloudEvents' `id`, which consumers deduplicate on. Filled by the
    # database, so the hot statements that write events never send one.
    event_id = models.UUIDField(db_column="id", db_default=models.Func(function="gen_random_uuid"))
    aggregatetype = models.CharField(max_length=32)  # task, agent
    aggregateid = models.UUIDField()
    type = models.CharField(max_length=100)  # the CloudEvents type: io.orchestrator.task.created.v1
    payload = models.JSONField()
    # The entity's own event counter: 1, 2, 3... in the order its changes committed (docs/events.md).
    sequence = models.BigIntegerField()
    created_at = models.DateTimeField()
    # pg_current_xact_id() of the writing transaction: rows of transactions older than every running one
    # (pg_snapshot_xmin) can no longer be joined by others, so the relay publishes up to there and a slow
    # transaction's rows are never skipped.
    txid = TransactionIdField(db_default=models.Func(function="pg_current_xact_id"), editable=False)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "outbox_event"
        ordering = ["position"]
        indexes = [
            # The relay's scan: what is left to publish, in transaction order. Small: rows leave it when
            # published.
            models.Index(
                fields=["txid", "position"],
                name="outbox_unpublished",
                condition=models.Q(published_at__isnull=True),
            ),
            # One entity's events: replay by entity, and the relay's check that an entity's earlier
            # event is not still waiting.
            models.Index(fields=["aggregateid", "sequence"], name="outbox_entity"),
            # Time windows (replay, retention): rows arrive in time order, so a BRIN index is enough and
            # costs the hot path almost nothing.
            BrinIndex(fields=["created_at"], name="outbox_created_brin"),
        ]

    def __str__(self):
        return f"{self.type} {self.aggregateid} #{self.sequence}"

    @property
    def published(self):
        return self.published_at is not None


class EntitySequence(models.Model):
    """The last sequence number given to an entity that has no counter of its own (agents).

    Tasks count on their own row (Task.event_sequence), bumped by the UPDATE that moves them. An agent's
    status or circuit changes are rare next to its heartbeats, so its counter lives here and is bumped
    only when an event is written, in the same statement; the agent's row is locked by that statement
    already, so the counter is never contended.
    """

    aggregatetype = models.CharField(max_length=32)
    aggregateid = models.UUIDField()
    value = models.BigIntegerField()

    class Meta:
        db_table = "outbox_sequence"
        constraints = [
            models.UniqueConstraint(fields=["aggregatetype", "aggregateid"], name="outbox_sequence_entity")
        ]

    def __str__(self):
        return f"{self.aggregatetype} {self.aggregateid}: {self.value}"


class Replay(models.Model):
    """An operator's request to publish past events again (POST /api/v1/events/replay), worked off by
    the relay beside the live events, in chunks, resuming where it stopped."""

    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    # A window of creation times, or one entity (then the window may narrow it further).
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    aggregateid = models.UUIDField(null=True, blank=True)
    # The newest event when it was asked for: later ones reach consumers live.
    until_position = models.BigIntegerField()
    # Progress: the last outbox position republished, how many were, and when it finished.
    after_position = models.BigIntegerField(default=0)
    published = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "outbox_replay"
        ordering = ["-created_at"]

    def __str__(self):
        return f"replay {self.pk}"
