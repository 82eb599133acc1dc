from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import replays
from .serializers import ReplayAcceptedSerializer, ReplaySerializer


class ReplayView(APIView):
    """Publish past events again, with their original ids and sequences (operators only)."""

    @extend_schema(request=ReplaySerializer, responses={202: ReplayAcceptedSerializer})
    def post(self, request):
        serializer = ReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        replay = replays.request_replay(
            since=data.get("since"),
            until=data.get("until"),
            aggregate_id=data.get("aggregate_id"),
            requested_by=request.user.get_username(),
        )
        body = {
            "replay_id": replay.pk,
            "events": replay.total,
            "since": replay.since,
            "until": replay.until,
            "aggregate_id": replay.aggregateid,
        }
        return Response(ReplayAcceptedSerializer(body).data, status=status.HTTP_202_ACCEPTED)
