from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self):
        # tasks never imports workflows: it tells, inside the transaction of the move, which workflow
        # steps' tasks ended, and the engine advances their runs in that same transaction.
        from tasks import signals

        from . import advancing

        signals.step_tasks_ended.connect(advancing.on_step_tasks_ended, dispatch_uid="workflows.advance")
