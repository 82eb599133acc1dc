from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        # Monitoring listens to the apps below it; none of them imports monitoring.
        from agents import signals as agent_signals
        from orchestrator_project import live
        from tasks import signals as task_signals
        from workflows import events as workflow_events

        from . import beat, notifications, recorder, workflow_live, workflow_metrics  # noqa: F401  (beat)

        live.subscribe_task_transitions(recorder.record_task_transitions)
        agent_signals.status_changed.connect(notifications.on_agent_status_changed)
        agent_signals.unregistered.connect(notifications.on_agent_unregistered)
        task_signals.tasks_failed.connect(notifications.on_tasks_failed)
        workflow_events.changes_committed.connect(workflow_metrics.on_changes_committed)
        workflow_events.changes_committed.connect(workflow_live.on_changes_committed)
