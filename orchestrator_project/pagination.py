import re

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination

from .validation import unstorable_text

# What DRF's cursors are made of (standard base64); DRF's own decoding would skip anything else, so that
# `?cursor=%%%` or `?cursor=` read as the first page.
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


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
    and no COUNT(*) over millions of rows. Answers `next`, `previous` and `results`.

    A cursor that is not one of ours is a 400 naming `cursor`, like any other bad parameter (DRF answers
    404, which means an unknown URL here). That includes an empty one, and a well-formed one whose
    position does not fit the ordering's column (`p=abc` under `?ordering=priority`, a NUL under
    `?ordering=status`), which DRF would pass on to the database, to fail there with a 500.
    """

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_cursor_message = "Invalid cursor: use the `next` or `previous` link of a page as it was given."

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model  # for decode_cursor, which DRF calls without the queryset
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = None
        if cursor is None or not _BASE64.fullmatch(encoded) or not self._fits_the_ordering(cursor.position):
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def _fits_the_ordering(self, position):
        if position is None:
            return True
        if unstorable_text(position):
            return False
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except (AttributeError, FieldDoesNotExist):
            return True  # not a plain column (or no model): nothing to check it against
        try:
            field.to_python(position)
        except DjangoValidationError:
            return False
        return True
