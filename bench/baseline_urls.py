"""The project's URLs plus `POST /bench/baseline`: a trivial authenticated DRF view inserting one row.

It goes through the same middleware, authentication (Bearer token) and permission classes as the task
API, parses the JSON body and inserts it into `bench_baseline` (created by the benchmark, not a model),
so the gap between it and `POST /api/v1/tasks` is what the product adds on top of DRF.
"""

import json

from django.db import connection
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator_project.urls import urlpatterns as project_urlpatterns


class BaselineView(APIView):
    def post(self, request):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_baseline (payload, created_at) VALUES (%s, now()) RETURNING id",
                [json.dumps(request.data)],
            )
            row_id = cursor.fetchone()[0]
        return Response({"id": row_id}, status=201)


urlpatterns = [path("bench/baseline", BaselineView.as_view()), *project_urlpatterns]
