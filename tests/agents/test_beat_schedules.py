from django_celery_beat.models import PeriodicTask


def test_the_sweep_and_the_probes_are_scheduled_in_the_database(db, settings):
    tasks = {task.task: task for task in PeriodicTask.objects.filter(task__startswith="agents.")}

    assert set(tasks) == {"agents.jobs.expire_stale_agents", "agents.jobs.probe_agents"}
    assert (
        tasks["agents.jobs.expire_stale_agents"].interval.every,
        tasks["agents.jobs.expire_stale_agents"].interval.period,
    ) == (settings.SWEEP_INTERVAL_SECONDS, "seconds")
    assert tasks["agents.jobs.probe_agents"].interval.every == settings.AGENT_PROBE_INTERVAL
    assert all(task.enabled for task in tasks.values())


def test_the_scheduled_jobs_exist(db):
    from orchestrator_project import celery_app

    celery_app.loader.import_default_modules()
    assert {"agents.jobs.expire_stale_agents", "agents.jobs.probe_agents"} <= set(celery_app.tasks)
