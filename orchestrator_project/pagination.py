from rest_framework.pagination import CursorPagination, PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


class KeysetPagination(CursorPagination):
    """Keyset (cursor) pagination for tables that grow without bound: page N costs the same as page 1,
    and no COUNT(*) over millions of rows. Answers `next`, `previous` and `results`."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
