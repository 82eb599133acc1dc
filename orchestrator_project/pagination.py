from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination


class StrictPageSizeMixin:
    """A page_size that is not a positive integer is an error (DRF would quietly use the default);
    one above max_page_size is capped."""

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: ["Must be a positive integer."]})
        return min(int(raw), self.max_page_size)


class StandardPagination(StrictPageSizeMixin, PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class KeysetPagination(StrictPageSizeMixin, CursorPagination):
    """Keyset (cursor) pagination for tables that grow without bound: page N costs the same as page 1,
    and no COUNT(*) over millions of rows. Answers `next`, `previous` and `results`."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
