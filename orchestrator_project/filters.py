import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.mixins import ListModelMixin
from rest_framework.settings import api_settings


class StrictFilterSet(django_filters.FilterSet):
    """A typed filter sent empty (`?created_before=`, `?status=`) is an error, not "no filter": only free
    text may be empty. django-filter would otherwise quietly ignore it and answer the unfiltered list."""

    def is_valid(self):
        valid = super().is_valid()
        for name, declared in self.filters.items():
            empty = "" in self.data.getlist(name, [])
            if empty and not isinstance(declared, django_filters.CharFilter):
                # One message for every typed filter (a choice filter's own read "Select a valid choice.
                #  is not one of the available choices.", with nothing between the two spaces).
                self.form.errors.pop(name, None)
                self.form.add_error(name, "Must not be empty.")
                valid = False
        return valid


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=` naming a field the list cannot be ordered by is a 400 listing the fields it can be;
    DRF would quietly answer in the default order, which looks like an answer to the question asked.

    Every ordering ends with the primary key: rows that tie on the fields asked for (`?ordering=priority`)
    come in the same order on every page. Without it Postgres ordered the ties as it liked, and pages
    skipped some rows and repeated others (keyset pages step over ties by counting them).
    """

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        if params:
            valid = {name for name, _ in self.get_valid_fields(queryset, view, {"request": request})}
            wrong = [term.strip() for term in params.split(",") if term.strip().lstrip("-") not in valid]
            if wrong:
                raise ValidationError(
                    {
                        self.ordering_param: [
                            f"Cannot order by {', '.join(wrong)}. Use one of {', '.join(sorted(valid))}, "
                            "with - in front for descending."
                        ]
                    }
                )
        ordering = super().get_ordering(request, queryset, view)
        if not ordering:
            return ordering  # none here: the pagination's own (a map step's items, in item order)
        key = queryset.model._meta.pk.name
        if key not in {field.lstrip("-") for field in ordering}:
            ordering = (*ordering, key)
        return ordering


def refuse_unknown_parameters(request, known):
    """A query parameter the endpoint does not take is a 400 naming the ones it does: a misspelt
    filter (`?agent=` for `?agent_id=`, `?parent=` for `?parent_run_id=`) would otherwise answer the
    unfiltered list, which looks like an answer to the question asked. Every endpoint takes DRF's
    `?format=`."""
    known = {*known, api_settings.URL_FORMAT_OVERRIDE}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        message = f"Unknown parameter. This endpoint takes: {', '.join(sorted(known))}."
        raise ValidationError({name: [message] for name in unknown})


def _lists(view):
    """Whether the view answers a list (a viewset's `list` action, or a ListAPIView)."""
    if hasattr(view, "action"):
        return view.action == "list"
    return isinstance(view, ListModelMixin)


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend, and a list's query parameters are checked: each must be one of its
    filters, or a parameter of its search, ordering or pagination."""

    def filter_queryset(self, request, queryset, view):
        # Only a list: a detail view's lookup runs the filter backends too (get_object), and its own
        # parameters (a result report's ?attempt=) are its business.
        if _lists(view):
            refuse_unknown_parameters(request, self.known_parameters(request, queryset, view))
        return super().filter_queryset(request, queryset, view)

    def known_parameters(self, request, queryset, view):
        known = set()
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            known |= set(filterset_class.base_filters)
        for backend in view.filter_backends:
            if issubclass(backend, OrderingFilter):
                known.add(backend.ordering_param)
            elif issubclass(backend, SearchFilter) and getattr(view, "search_fields", None):
                known.add(backend.search_param)
        paginator = getattr(view, "paginator", None)
        for name in ("cursor_query_param", "page_query_param", "page_size_query_param"):
            if getattr(paginator, name, None):
                known.add(getattr(paginator, name))
        return known
