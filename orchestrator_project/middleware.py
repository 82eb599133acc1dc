from django.http import JsonResponse


class RejectNulInQueryMiddleware:
    """Postgres cannot compare text with NUL characters; a filter like `?type=%00` would otherwise fail
    deep in a query with a 500. Refuse such requests up front with a clear 400."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            return JsonResponse({"detail": "Query parameters must not contain NUL characters."}, status=400)
        return self.get_response(request)
