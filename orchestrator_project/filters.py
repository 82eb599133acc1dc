import django_filters
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter


class StrictFilterSet(django_filters.FilterSet):
    """A typed filter sent empty (`?created_before=`, `?status=`) is an error, not "no filter": only free
    text may be empty. django-filter would otherwise quietly ignore it and answer the unfiltered list."""

    def is_valid(self):
        valid = super().is_valid()
        for name, declared in self.filters.items():
            empty = "" in self.data.getlist(name, [])
            if empty and not isinstance(declared, django_filters.CharFilter) and name not in self.form.errors:
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
