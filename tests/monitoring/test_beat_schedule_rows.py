"""The beat schedule rows are the truth: settings seed and update them when beat starts, an interval
edited in the admin sticks until its setting changes, and health judges each sweep by its own row."""

import sys
import time

import pytest
import time_machine
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from monitoring import beat, schedules
from tests.processes import Child, child_env

from .conftest import ARTIFACTS

LIVENESS = "agents: expire stale agents"
PROBES = "agents: probe agent health"
TASK_SWEEP = "tasks: sweep leases, deadlines and due retries"
APPROVALS = "workflows: apply the default decision of approvals past their due time"
ALL = [LIVENESS, PROBES, TASK_SWEEP, APPROVALS]


def every(name):
    row = PeriodicTask.objects.select_related("interval").get(name=name)
    return row.interval.every, row.interval.period


def edit_in_the_admin(admin_client, name, seconds):
    """What an operator does: open the schedule's interval in the admin and change it."""
    interval = PeriodicTask.objects.get(name=name).interval
    response = admin_client.post(
        f"/admin/django_celery_beat/intervalschedule/{interval.pk}/change/",
        {
            "every": seconds,
            "period": IntervalSchedule.SECONDS,
            # The page's inline list of the periodic tasks on this interval, left as it is.
            "periodictask_set-TOTAL_FORMS": 0,
            "periodictask_set-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.mark.django_db
def test_missing_rows_are_created_from_the_settings(settings):
    PeriodicTask.objects.filter(name__in=ALL).delete()
    settings.SWEEP_INTERVAL_SECONDS, settings.AGENT_PROBE_INTERVAL = 3, 20
    settings.WORKFLOW_APPROVAL_SWEEP_SECONDS = 4

    assert sorted(schedules.sync_from_settings()) == sorted(ALL)

    assert (every(LIVENESS), every(TASK_SWEEP), every(PROBES), every(APPROVALS)) == (
        (3, "seconds"),
        (3, "seconds"),
        (20, "seconds"),
        (4, "seconds"),
    )
    row = PeriodicTask.objects.get(name=TASK_SWEEP)
    assert (row.task, row.enabled, row.expire_seconds) == ("tasks.sweep", True, 3)
    row = PeriodicTask.objects.get(name=APPROVALS)
    assert (row.task, row.enabled, row.expire_seconds) == ("workflows.expire_approvals", True, 4)


@pytest.mark.django_db
def test_the_approval_sweeps_interval_follows_its_setting_after_the_first_migrate(settings):
    """Its row is made by a migration; a later change of the setting reaches it at beat's next start."""
    schedules.sync_from_settings()
    settings.WORKFLOW_APPROVAL_SWEEP_SECONDS += 7

    assert schedules.sync_from_settings() == [APPROVALS]
    assert every(APPROVALS) == (settings.WORKFLOW_APPROVAL_SWEEP_SECONDS, "seconds")


@pytest.mark.django_db
def test_a_changed_setting_is_applied_at_the_next_start(settings):
    schedules.sync_from_settings()
    settings.SWEEP_INTERVAL_SECONDS = 5

    assert sorted(schedules.sync_from_settings()) == sorted([LIVENESS, TASK_SWEEP])

    assert every(LIVENESS) == every(TASK_SWEEP) == (5, "seconds")
    assert every(PROBES) == (settings.AGENT_PROBE_INTERVAL, "seconds")
    assert schedules.sync_from_settings() == []  # nothing changed since


@pytest.mark.django_db
def test_an_interval_edited_in_the_admin_sticks_until_its_setting_changes(admin_client, settings):
    schedules.sync_from_settings()
    edit_in_the_admin(admin_client, PROBES, 120)

    assert schedules.sync_from_settings() == []
    assert every(PROBES) == (120, "seconds")

    settings.AGENT_PROBE_INTERVAL += 1
    assert schedules.sync_from_settings() == [PROBES]
    assert every(PROBES) == (settings.AGENT_PROBE_INTERVAL, "seconds")


@pytest.mark.django_db
def test_a_sweep_disabled_in_the_admin_stays_disabled_when_its_interval_changes(settings):
    schedules.sync_from_settings()
    PeriodicTask.objects.filter(name=PROBES).update(enabled=False)
    settings.AGENT_PROBE_INTERVAL += 1

    schedules.sync_from_settings()

    row = PeriodicTask.objects.get(name=PROBES)
    assert (row.enabled, row.interval.every) == (False, settings.AGENT_PROBE_INTERVAL)


@pytest.mark.django_db
def test_health_judges_each_sweep_against_its_own_rows_interval(client, admin_client, settings):
    settings.SWEEP_INTERVAL_SECONDS = 2
    schedules.sync_from_settings()
    with time_machine.travel(time.time() - 10, tick=False):
        beat.record_sweep("tasks.sweep")

    stale = client.get("/health/detailed").json()["checks"]["beat"]
    assert (stale["status"], stale["state"]) == ("degraded", "stale")
    assert stale["sweeps"]["tasks.sweep"]["max_age_seconds"] == 6

    # The operator slows the task sweep down to every 30 s: ten seconds is young for it, whatever the setting.
    edit_in_the_admin(admin_client, TASK_SWEEP, 30)
    fresh = client.get("/health/detailed").json()["checks"]["beat"]
    assert (fresh["status"], fresh["state"]) == ("ok", "ok")
    assert fresh["sweeps"]["tasks.sweep"] == {
        **fresh["sweeps"]["tasks.sweep"],
        "interval_seconds": 30,
        "max_age_seconds": 90,
        "state": "ok",
    }
    assert fresh["max_age_seconds"] == 90


@pytest.mark.django_db
def test_a_disabled_sweep_is_not_judged(settings):
    schedules.sync_from_settings()
    PeriodicTask.objects.filter(name=PROBES).update(enabled=False)
    with time_machine.travel(time.time() - 3600, tick=False):
        beat.record_sweep("agents.probes")
    beat.record_sweep("tasks.sweep")

    state = beat.beat_state()

    assert state["state"] == "ok"
    assert state["sweeps"]["agents.probes"]["state"] == "disabled"
    assert state["sweeps"]["tasks.sweep"]["state"] == "ok"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_beat_applies_changed_settings_when_it_starts_and_keeps_admin_edits(settings):
    def start_beat(name, **env):
        args = [sys.executable, "-m", "celery", "-A", "orchestrator_project", "beat", "--loglevel", "INFO"]
        child = Child(name, args, child_env(**env), ARTIFACTS)
        child.wait_for_output("beat schedules checked against the settings")
        return child

    ARTIFACTS.mkdir(exist_ok=True)
    first = start_beat("beat-schedules-1", SWEEP_INTERVAL_SECONDS=7, AGENT_PROBE_INTERVAL=45)
    first.stop()
    assert every(TASK_SWEEP) == every(LIVENESS) == (7, "seconds")
    assert every(PROBES) == (45, "seconds")

    # An operator's edit survives a restart with the same settings...
    PeriodicTask.objects.filter(name=PROBES).update(
        interval=IntervalSchedule.objects.get_or_create(every=300, period=IntervalSchedule.SECONDS)[0]
    )
    second = start_beat("beat-schedules-2", SWEEP_INTERVAL_SECONDS=7, AGENT_PROBE_INTERVAL=45)
    assert "written: none" in second.output()
    second.stop()
    assert every(PROBES) == (300, "seconds")

    # ...and a changed setting wins over it.
    third = start_beat("beat-schedules-3", SWEEP_INTERVAL_SECONDS=7, AGENT_PROBE_INTERVAL=50)
    third.stop()
    assert every(PROBES) == (50, "seconds")


@pytest.mark.django_db
def test_the_log_says_first_applied_on_a_new_database_and_changed_after(settings, caplog):
    """A new database's rows come from the migrations; the first start applies the settings to them,
    which is not a change anybody made."""
    caplog.set_level("INFO", logger="monitoring.schedules")
    schedules.sync_from_settings()
    first = [r.getMessage() for r in caplog.records if "beat schedule " in r.getMessage()]
    assert first and all("first applied" in line for line in first), first

    caplog.clear()
    settings.AGENT_PROBE_INTERVAL += 1
    schedules.sync_from_settings()
    [line] = [r.getMessage() for r in caplog.records if "beat schedule " in r.getMessage()]
    assert line.endswith("(AGENT_PROBE_INTERVAL changed)"), line
