from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator_project.accounts.roles import is_agent

from . import services
from .filters import AgentFilter, SafeSearchFilter
from .models import Agent
from .permissions import AgentRegistryAccess
from .serializers import (
    AgentRegistrationSerializer,
    AgentSerializer,
    CapabilityListSerializer,
    CapabilitySerializer,
    HeartbeatResponseSerializer,
    HeartbeatSerializer,
    RegisteredAgentSerializer,
    plainly_valid_heartbeat,
)


class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    permission_classes = [AgentRegistryAccess]
    lookup_field = "agent_id"
    lookup_value_converter = "uuid"
    filter_backends = [DjangoFilterBackend, SafeSearchFilter, OrderingFilter]
    filterset_class = AgentFilter
    search_fields = ["name"]
    ordering_fields = ["name", "type", "status", "created_at", "last_heartbeat", "current_load", "weight"]
    ordering = ["name", "agent_id"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if is_agent(self.request.user):
            # Another agent's id is simply not found.
            queryset = queryset.filter(pk=self.request.user.agent.pk)
        return queryset

    @extend_schema(
        request=AgentRegistrationSerializer,
        responses={201: RegisteredAgentSerializer, 200: RegisteredAgentSerializer},
    )
    def create(self, request):
        registration = AgentRegistrationSerializer(data=request.data)
        registration.is_valid(raise_exception=True)
        agent, created, token = services.register_agent(**registration.validated_data)
        agent.token = token
        return Response(
            RegisteredAgentSerializer(agent).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, agent_id):
        if not services.unregister_agent(agent_id=agent_id):
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=HeartbeatSerializer, responses=HeartbeatResponseSerializer)
    # Rate-limited per agent inside the heartbeat's own UPDATE (agents/pacing.py), not by a DRF throttle.
    @action(detail=True, methods=["post"], throttle_classes=[])
    def heartbeat(self, request, agent_id):
        # No get_object(): a heartbeat is the authentication lookup plus one UPDATE, nothing more.
        if is_agent(request.user) and request.user.agent.pk != agent_id:
            raise NotFound()
        data = plainly_valid_heartbeat(request.data)
        if data is None:
            body = HeartbeatSerializer(data=request.data if request.data is not None else {})
            body.is_valid(raise_exception=True)
            data = body.validated_data
        change = services.heartbeat(
            agent_id=agent_id,
            status=data.get("status"),
            reported_load=data.get("current_load"),
            metrics=data.get("metrics"),
            paced=True,
        )
        if change is None:
            raise NotFound()
        return Response(
            {
                "agent_id": change.agent_id,
                "status": change.status,
                "next_heartbeat_before": change.heartbeat_expires_at,
                "heartbeat_timeout": change.heartbeat_timeout,
            }
        )

    @extend_schema(request=None, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request, agent_id):
        return self._after(services.drain(agent_id=agent_id))

    @extend_schema(request=None, responses=AgentSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, agent_id):
        return self._after(services.resume(agent_id=agent_id))

    def _after(self, change):
        if change is None:
            raise NotFound()
        return Response(AgentSerializer(Agent.objects.get(pk=change.agent_id)).data)


class CapabilityListView(APIView):
    """Every capability offered by a registered agent, with how many of those agents are online."""

    @extend_schema(responses=CapabilityListSerializer)
    def get(self, request):
        results = services.capability_counts()
        return Response({"count": len(results), "results": CapabilitySerializer(results, many=True).data})
