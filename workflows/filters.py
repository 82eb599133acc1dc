import django_filters

from orchestrator_project.filters import StrictFilterSet
from tasks.filters import IntegerFilter

from .models import RunStatus, StepRun, StepStatus, WorkflowRun


class RunFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    workflow = django_filters.CharFilter(field_name="definition__name")
    version = IntegerFilter(field_name="definition__version")
    # A sub-workflow step's child runs (through the runs' parent_step index).
    parent_run_id = django_filters.UUIDFilter(field_name="parent_step__run_id")

    class Meta:
        model = WorkflowRun
        fields = ["status", "workflow", "version", "parent_run_id"]


class MapItemFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=StepStatus.choices)

    class Meta:
        model = StepRun
        fields = ["status"]
