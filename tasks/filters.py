from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from orchestrator_project.filters import StrictFilterSet

from .models import Task, TaskStatus


class IntegerFilter(django_filters.NumberFilter):
    # NumberFilter takes decimals: `priority_min=0.5` would silently mean something else.
    field_class = forms.IntegerField


class UtcIsoDateTimeField(IsoDateTimeField):
    """Python accepts UTC offsets up to ±23:59, Postgres only up to ±15:59: compare in UTC, so that
    `created_after=2026-01-01T00:00+23:00` is a valid filter and not a server error."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Date-time out of range.") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class TaskFilter(StrictFilterSet):
    status = django_filters.MultipleChoiceFilter(choices=TaskStatus.choices)
    type = django_filters.CharFilter()
    agent_id = django_filters.UUIDFilter(field_name="assigned_agent_id")
    priority = IntegerFilter()
    priority_min = IntegerFilter(field_name="priority", lookup_expr="gte")
    priority_max = IntegerFilter(field_name="priority", lookup_expr="lte")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Task
        fields = ["status", "type", "agent_id", "priority"]
