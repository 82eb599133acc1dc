import django_filters


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
