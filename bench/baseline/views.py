from django.db import transaction
from rest_framework.generics import CreateAPIView

from .jobs import call_agent
from .models import Row
from .serializers import JobSerializer, RowSerializer


class CreateRow(CreateAPIView):
    serializer_class = RowSerializer


class CreateRowRelaxed(CreateAPIView):
    """The same, committed without waiting for the WAL flush (as the orchestrator's heartbeats are)."""

    serializer_class = RowSerializer

    def perform_create(self, serializer):
        serializer.instance = Row.objects.using("relaxed").create(**serializer.validated_data)


class CreateJob(CreateAPIView):
    serializer_class = JobSerializer

    def perform_create(self, serializer):
        with transaction.atomic():
            job = serializer.save()
            transaction.on_commit(lambda: call_agent.delay(job.pk))
