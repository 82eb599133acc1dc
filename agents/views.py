from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator_project.accounts.roles import is_agent
from orchestrator_project.filters import StrictFilterBackend, StrictOrderingFilter, refuse_unknown_parameters

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

NOT_FOUND = OpenApiResponse(description="Unknown agent (or, with an agent's token, another agent)")


@extend_schema_view(
    list=extend_schema(
        summary="List agents",
        description="Every registered agent with its status, load, circuit breaker and routing figures, a "
        "page at a time (`page`, `page_size`). Filter by `status`, `type` and `capability` (repeat it: the "
        "agent must offer all of them), search by `name`, sort with `ordering`. "
        "Viewers and operators; an agent's token gets 403.",
        tags=["agents"],
    ),
    retrieve=extend_schema(
        summary="Get an agent",
        description="One agent, as in the list. Viewers and operators may read any agent; an agent's own "
        "token may read only itself (any other id is 404, so a token cannot learn which agents exist).",
        tags=["agents"],
        responses={200: AgentSerializer, 404: NOT_FOUND},
    ),
)
class AgentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    permission_classes = [AgentRegistryAccess]
    lookup_field = "agent_id"
    lookup_value_converter = "uuid"
    filter_backends = [StrictFilterBackend, SafeSearchFilter, StrictOrderingFilter]
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
        summary="Register an agent (or update the one at the same endpoint)",
        description="Operators only. Registers the agent at `endpoint` (201), or updates the agent already "
        "registered there (200). Either way the answer carries new credentials, shown only this once: "
        "`token`, the agent's own bearer token (`aoa_…`), and `signing_secret` (`whsec_…`), the key of the "
        "signatures on the orchestrator's calls to the agent; earlier credentials stop working at once. "
        "Without `capabilities`, they are read from the agent's card at "
        "`{endpoint}/.well-known/agent-card.json`, and a card that cannot be read is a 400. The endpoint "
        "must be an http(s) base URL whose host resolves into `AGENT_ALLOWED_NETWORKS`. Registering also "
        "counts as a heartbeat.",
        tags=["agents"],
        request=AgentRegistrationSerializer,
        responses={
            201: RegisteredAgentSerializer,
            200: OpenApiResponse(
                RegisteredAgentSerializer, description="Already registered at this endpoint: updated"
            ),
            400: OpenApiResponse(description="Invalid fields, a refused endpoint or an unreadable card"),
        },
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

    @extend_schema(
        summary="Unregister an agent",
        description="Operators only. The agent's assigned and running tasks are handed back to dispatch "
        "(other capable agents get them), then the agent and its credentials are deleted.",
        tags=["agents"],
        request=None,
        responses={204: OpenApiResponse(description="Unregistered"), 404: NOT_FOUND},
    )
    def destroy(self, request, agent_id):
        if not services.unregister_agent(agent_id=agent_id):
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Send a heartbeat",
        description="Sent by the agent itself with its own token every few seconds (operators may send one "
        "too). It keeps the agent alive for its `heartbeat_timeout` on the orchestrator's clock; the answer "
        "says by when the next one is due, after which the agent goes `offline` and its tasks go to other "
        "agents. The body is optional: `status` (`online`, or `draining` to finish its work and get nothing "
        "new), `current_load` and `metrics`. An `offline` agent comes back `online`; an operator's drain "
        "and an `unhealthy` status are kept. 404 for an unknown id or another agent's; 429 with "
        "`Retry-After` above the rate limit (`HEARTBEAT_RATE`).",
        tags=["agents"],
        request=HeartbeatSerializer,
        responses={200: HeartbeatResponseSerializer, 404: NOT_FOUND},
    )
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

    @extend_schema(
        summary="Drain an agent: it gets nothing new, and finishes what it runs",
        description="Operators only. The agent becomes `draining` and stays so, whatever its heartbeats "
        "say, until an operator resumes it (an `offline` or `unhealthy` agent keeps that status and comes "
        "back draining). Its running tasks are not interrupted.",
        tags=["agents"],
        request=None,
        responses={200: AgentSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def drain(self, request, agent_id):
        return self._after(services.drain(agent_id=agent_id))

    @extend_schema(
        summary="Resume a drained agent",
        description="Operators only. Undoes a drain: the agent is `online` again if its heartbeat is "
        "current, `offline` if it has expired (its tasks then go to other agents until it heartbeats "
        "again). An agent that was not drained is left as it is.",
        tags=["agents"],
        request=None,
        responses={200: AgentSerializer, 404: NOT_FOUND},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, agent_id):
        return self._after(services.resume(agent_id=agent_id))

    def _after(self, change):
        if change is None:
            raise NotFound()
        return Response(AgentSerializer(Agent.objects.get(pk=change.agent_id)).data)


class CapabilityListView(APIView):
    """Every capability offered by a registered agent, with how many of those agents are online."""

    @extend_schema(
        summary="List capabilities",
        description="Every capability offered by a registered agent, with how many of those agents are "
        "online. Viewers and operators.",
        tags=["capabilities"],
        responses=CapabilityListSerializer,
    )
    def get(self, request):
        refuse_unknown_parameters(request, ())
        results = services.capability_counts()
        return Response({"count": len(results), "results": CapabilitySerializer(results, many=True).data})
