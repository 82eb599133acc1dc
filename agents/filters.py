import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters
from rest_framework.exceptions import ValidationError

from orchestrator_project.filters import StrictFilterSet

from .discovery import CAPABILITY_PATTERN
from .models import Agent, AgentStatus


class _CapabilitiesField(forms.MultipleChoiceField):
    """Any number of `capability=` values, each shaped like a capability (there is no fixed list)."""

    def valid_value(self, value):
        return bool(CAPABILITY_PATTERN.match(value))


@extend_schema_field(OpenApiTypes.STR)  # repeated: spectacular makes it an array
class CapabilitiesFilter(django_filters.MultipleChoiceFilter):
    field_class = _CapabilitiesField


class AgentFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=AgentStatus.choices)
    type = django_filters.CharFilter(max_length=100)
    # Repeatable, and the agent must have all of them: `capabilities @> ARRAY[...]`, served by the GIN index.
    capability = CapabilitiesFilter(method="filter_capabilities")

    class Meta:
        model = Agent
        fields = ["status", "type", "capability"]

    def filter_capabilities(self, queryset, name, value):
        return queryset.filter(capabilities__contains=list(value)) if value else queryset


class SafeSearchFilter(filters.SearchFilter):
    """Postgres cannot compare text with NUL characters; say so instead of failing with a 500."""

    def get_search_terms(self, request):
        value = request.query_params.get(self.search_param, "")
        if "\x00" in value:
            raise ValidationError({self.search_param: ["must not contain NUL characters"]})
        return super().get_search_terms(request)
