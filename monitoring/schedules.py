"""The periodic sweeps: which beat schedule row runs each one, and how the settings reach those rows.

The rows (django-celery-beat's PeriodicTask, edited in the admin) are the truth: Celery beat runs what
they say, and `/health/detailed` judges each sweep's age against its own row's interval (beat.py).

The settings seed and update the rows when Celery beat starts (`sync_from_settings`, called on
`beat_init` in monitoring/jobs.py): a missing row is created, and a row whose setting changed since it
was last applied gets the new interval. A setting that did not change is not applied again, so an
interval edited in the admin sticks until the setting itself is changed.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from .models import AppliedInterval

logger = logging.getLogger(__name__)

# Any constant: two beats starting together (tests/chaos) apply the settings one after the other.
_SYNC_LOCK = 0x0B_EA_75_C4


@dataclass(frozen=True)
class Sweep:
    name: str  # its name in /health/detailed (recorded by beat.py when its job starts)
    schedule: str  # the PeriodicTask's name (made by the apps' migrations, shown in the admin)
    task: str  # the Celery task it runs
    setting: str  # the setting (and environment variable) with its interval in seconds

    def setting_seconds(self):
        return getattr(settings, self.setting)


_LIVENESS = "agents.jobs.expire_stale_agents"
_TASK_SWEEP = "tasks: sweep leases, deadlines and due retries"
_APPROVALS = "workflows: apply the default decision of approvals past their due time"
SWEEPS = (
    Sweep("agents.liveness", "agents: expire stale agents", _LIVENESS, "SWEEP_INTERVAL_SECONDS"),
    Sweep("agents.probes", "agents: probe agent health", "agents.jobs.probe_agents", "AGENT_PROBE_INTERVAL"),
    Sweep("tasks.sweep", _TASK_SWEEP, "tasks.sweep", "SWEEP_INTERVAL_SECONDS"),
    Sweep("workflows.approvals", _APPROVALS, "workflows.expire_approvals", "WORKFLOW_APPROVAL_SWEEP_SECONDS"),
)


def sync_from_settings():
    """Create missing rows and apply changed settings to the rows. Returns the names of rows written."""
    written = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK])
        rows = {row.name: row for row in PeriodicTask.objects.filter(name__in=[s.schedule for s in SWEEPS])}
        applied = dict(AppliedInterval.objects.values_list("schedule", "seconds"))
        for sweep in SWEEPS:
            seconds = sweep.setting_seconds()
            row = rows.get(sweep.schedule)
            if row is not None and applied.get(sweep.schedule) == seconds:
                continue  # the setting has not changed since it was applied: the row, maybe edited, stands
            _apply(sweep, row, seconds, first=sweep.schedule not in applied)
            AppliedInterval.objects.update_or_create(schedule=sweep.schedule, defaults={"seconds": seconds})
            written.append(sweep.schedule)
    logger.info("beat schedules checked against the settings; written: %s", ", ".join(written) or "none")
    return written


def _apply(sweep, row, seconds, *, first):
    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    if row is None:
        logger.info("beat schedule %r created: every %s s (%s)", sweep.schedule, seconds, sweep.setting)
        # enabled only here: an operator who disabled a sweep keeps it disabled when its interval changes.
        row = PeriodicTask(name=sweep.schedule, task=sweep.task, enabled=True)
    else:
        # first: a row its migration made, which no setting was applied to yet (a new database).
        why = "first applied" if first else "changed"
        logger.info("beat schedule %r: every %s s (%s %s)", sweep.schedule, seconds, sweep.setting, why)
    row.interval, row.crontab, row.solar, row.clocked = interval, None, None, None
    # Sweeps queued while no worker ran are dropped, not run in a burst when one comes back.
    row.expire_seconds = seconds
    row.save()  # also tells a running beat to reload its schedule (PeriodicTasks.changed)


@dataclass(frozen=True)
class Expected:
    """How often a sweep should run, as its row says; `seconds` is None when it cannot be told."""

    seconds: float | None
    enabled: bool = True


def expected():
    """{sweep name: Expected} from the schedule rows; one query.

    A sweep whose row is missing is expected at its setting's interval (beat's next start recreates the
    row from it); a row on a crontab, solar or clocked schedule has no fixed interval to judge by.
    """
    names = {sweep.schedule: sweep for sweep in SWEEPS}
    found = {}
    for row in PeriodicTask.objects.filter(name__in=list(names)).select_related("interval"):
        sweep = names[row.name]
        seconds = row.interval.schedule.run_every.total_seconds() if row.interval else None
        found[sweep.name] = Expected(seconds=seconds, enabled=row.enabled)
    for sweep in SWEEPS:
        found.setdefault(sweep.name, Expected(seconds=float(sweep.setting_seconds())))
    return found
