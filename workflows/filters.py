import django_filters

from orchestrator_project.filters import StrictFilterSet

from .models import RunStatus, WorkflowRun


class RunFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    workflow = django_filters.CharFilter(field_name="definition__name")
    version = django_filters.NumberFilter(field_name="definition__version")

    class Meta:
        model = WorkflowRun
        fields = ["status", "workflow", "version"]
