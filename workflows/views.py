"""The workflows API: definitions (/api/v1/workflows) and runs (/api/v1/workflow-runs).

Viewsets stay declarative: serializers validate, each verb calls one service function (definitions.py,
runs.py), and the services' domain errors become 400, 404 and 409 (orchestrator_project/exceptions.py).
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator_project.filters import StrictFilterBackend, refuse_unknown_parameters
from orchestrator_project.pagination import KeysetPagination

from . import definitions, items, runs, spec
from .filters import MapItemFilter, RunFilter
from .models import StepRun, WorkflowDefinition, WorkflowRun
from .serializers import (
    DecisionSerializer,
    DefinitionCreatedSerializer,
    DefinitionCreateSerializer,
    DefinitionListSerializer,
    DefinitionSerializer,
    RetryStepSerializer,
    RunCreateSerializer,
    RunDetailSerializer,
    RunListSerializer,
    RunSerializer,
    StepRunSerializer,
    ValidateResponseSerializer,
    ValidateSerializer,
)

CONFLICT = OpenApiResponse(description="Illegal state change (the message says why)")
NOT_FOUND = OpenApiResponse(description="Unknown workflow, run or step")
INVALID = OpenApiResponse(description="Field errors, keyed like spec.steps[2].depends_on")
NOT_A_MAP = OpenApiResponse(description="Field errors: the step is not a map step, or a bad filter")
EXAMPLE_SPEC = {
    "defaults": {"timeout_seconds": 120, "max_retries": 2},
    "steps": [
        {"id": "plan", "task_type": "plan", "input": {"topic": {"$path": "$.input.topic"}}},
        {
            "id": "research",
            "type": "map",
            "depends_on": ["plan"],
            "task_type": "research",
            "over": {"$path": "$.steps.plan.output.questions"},
            "max_concurrency": 10,
            "input": {"question": {"$path": "$.item"}},
        },
        {"id": "review", "type": "approval", "depends_on": ["research"], "timeout_seconds": 3600},
        {
            "id": "write",
            "depends_on": ["review"],
            "task_type": "write",
            "input": {
                "title": {"$template": "Report on {{ $.input.topic }}"},
                "findings": {"$path": "$.steps.research.output"},
            },
        },
    ],
    "output": {"report": {"$path": "$.steps.write.output"}},
}
DEFINITION_EXAMPLE = OpenApiExample(
    "plan, research, review, write",
    value={"name": "research-report", "description": "A researched report", "spec": EXAMPLE_SPEC},
    request_only=True,
)
RUN_EXAMPLE = OpenApiExample(
    "start the latest version",
    value={"workflow": "research-report", "input": {"topic": "solar storage"}, "priority": 3},
    request_only=True,
)


class DefinitionListView(APIView):
    @extend_schema(
        summary="List workflows (the latest version of each)",
        tags=["workflows"],
        parameters=[
            OpenApiParameter("name", str, description="Only workflows whose name contains this text.")
        ],
        responses={200: DefinitionListSerializer(many=True), 400: INVALID},
    )
    def get(self, request):
        # Postgres' DISTINCT ON: the first row of each name in (name, -version) order, its latest.
        found = (
            WorkflowDefinition.objects.order_by("name", "-version")
            .distinct("name")
            .select_related("created_by")
        )
        refuse_unknown_parameters(request, {"name"})
        name = request.query_params.get("name")
        if name is not None:
            if len(name) > 100 or not name.isprintable():
                raise ValidationError({"name": ["At most 100 printable characters."]})
            found = found.filter(name__contains=name)
        return Response(DefinitionListSerializer(found, many=True).data)

    @extend_schema(
        summary="Create a workflow, or its next version",
        description="An identical spec returns the existing version (200); a different one under the same "
        "name becomes the next version (201). Unknown capabilities are warnings, not errors.",
        tags=["workflows"],
        request=DefinitionCreateSerializer,
        examples=[DEFINITION_EXAMPLE],
        responses={201: DefinitionCreatedSerializer, 200: DefinitionCreatedSerializer, 400: INVALID},
    )
    def post(self, request):
        body = DefinitionCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        definition, created, warnings = definitions.create_definition(
            **body.validated_data, user=request.user
        )
        data = {**DefinitionSerializer(definition).data, "warnings": warnings}
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ValidateView(APIView):
    @extend_schema(
        summary="Validate a workflow spec without storing it",
        tags=["workflows"],
        request=ValidateSerializer,
        examples=[OpenApiExample("a spec", value={"spec": EXAMPLE_SPEC}, request_only=True)],
        responses={200: ValidateResponseSerializer, 400: INVALID},
    )
    def post(self, request):
        body = ValidateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        normalized, warnings = definitions.validate_definition(spec=body.validated_data["spec"])
        return Response(
            {
                "valid": True,
                "spec": normalized,
                "spec_sha256": spec.canonical_sha256(normalized),
                "warnings": warnings,
            }
        )


class DefinitionDetailView(APIView):
    @extend_schema(
        summary="Get a workflow's latest version",
        tags=["workflows"],
        responses={200: DefinitionSerializer, 404: NOT_FOUND},
    )
    def get(self, request, name):
        return Response(DefinitionSerializer(definitions.get_definition(name=name)).data)


class DefinitionVersionsView(APIView):
    @extend_schema(
        summary="List a workflow's versions",
        tags=["workflows"],
        responses={200: DefinitionListSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, name):
        refuse_unknown_parameters(request, ())
        found = WorkflowDefinition.objects.filter(name=name).select_related("created_by").order_by("-version")
        if not found:
            definitions.get_definition(name=name)  # raises NotFound
        return Response(DefinitionListSerializer(found, many=True).data)


class DefinitionVersionView(APIView):
    @extend_schema(
        summary="Get one version of a workflow",
        tags=["workflows"],
        responses={200: DefinitionSerializer, 404: NOT_FOUND},
    )
    def get(self, request, name, version):
        return Response(DefinitionSerializer(definitions.get_definition(name=name, version=version)).data)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = WorkflowRun.objects.select_related("definition", "parent_step")
    lookup_field = "run_id"
    lookup_value_converter = "uuid"
    filterset_class = RunFilter
    pagination_class = KeysetPagination
    # Not finished_at: keyset pages cannot hold a position on a column that may be NULL (the unfinished
    # rows fell out of `?ordering=finished_at`). A finished row's last change, updated_at, is its end.
    ordering_fields = ["created_at", "priority", "status", "updated_at"]
    ordering = ["-created_at", "run_id"]

    def get_serializer_class(self):
        if self.action == "list":
            return RunListSerializer
        if self.action == "retrieve":
            return RunDetailSerializer
        return RunSerializer

    @extend_schema(summary="List workflow runs", tags=["workflow runs"])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Get a run with every step's status, attempt, agent, timing and output",
        description="The whole steps only: a map step's items are counted by status in its `items`, "
        "and listed by `GET /api/v1/workflow-runs/{run_id}/steps/{step_id}/items`.",
        tags=["workflow runs"],
        responses={200: RunDetailSerializer, 404: NOT_FOUND},
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        summary="Start a run of a workflow (pinned to its version at start)",
        tags=["workflow runs"],
        request=RunCreateSerializer,
        examples=[RUN_EXAMPLE],
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat-safe start: the same key returns the same run.",
            )
        ],
        responses={
            201: RunSerializer,
            200: RunSerializer,
            400: INVALID,
            404: NOT_FOUND,
            409: OpenApiResponse(description="Key reused with a different body"),
        },
    )
    def create(self, request):
        body = RunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
            raise ValidationError({"Idempotency-Key": ["Must be 1 to 255 printable characters."]})
        run, created = runs.start_run(**body.validated_data, user=request.user, idempotency_key=key)
        return Response(
            RunSerializer(run).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    def _verb(self, service, run_id, **kwargs):
        return Response(RunSerializer(service(run_id=run_id, **kwargs)).data)

    @extend_schema(
        summary="Cancel a run: pending steps are cancelled, running ones too; it ends when all have",
        tags=["workflow runs"],
        request=None,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, run_id=None):
        return self._verb(runs.cancel_run, run_id)

    @extend_schema(
        summary="Pause a run: no new step starts; running steps finish",
        tags=["workflow runs"],
        request=None,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, run_id=None):
        return self._verb(runs.pause_run, run_id)

    @extend_schema(
        summary="Resume a paused run",
        tags=["workflow runs"],
        request=None,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, run_id=None):
        return self._verb(runs.resume_run, run_id)

    @extend_schema(
        summary="Retry a failed run from a failed step",
        description="Resets only that step (or one failed item of a map, or with `failed_items` every failed "
        "item of it) and the steps downstream of it; "
        "upstream outputs are kept and the run keeps its pinned version.",
        tags=["workflow runs"],
        request=RetryStepSerializer,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="steps/<str:step_id>/retry")
    def retry_step(self, request, run_id=None, step_id=None):
        body = RetryStepSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        return self._verb(runs.retry_step, run_id, step_id=step_id, **body.validated_data)

    @extend_schema(
        summary="Approve an approval step",
        tags=["workflow runs"],
        request=DecisionSerializer,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="steps/<str:step_id>/approve")
    def approve(self, request, run_id=None, step_id=None):
        return self._decide(request, run_id, step_id, approved=True)

    @extend_schema(
        summary="Reject an approval step (it fails)",
        tags=["workflow runs"],
        request=DecisionSerializer,
        responses={200: RunSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], url_path="steps/<str:step_id>/reject")
    def reject(self, request, run_id=None, step_id=None):
        return self._decide(request, run_id, step_id, approved=False)

    def _decide(self, request, run_id, step_id, *, approved):
        body = DecisionSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        return self._verb(
            runs.decide_approval,
            run_id,
            step_id=step_id,
            approved=approved,
            by=request.user.get_username(),
            comment=body.validated_data["comment"],
        )


class MapItemPagination(KeysetPagination):
    # Item order; (run, step_id, map_index) is unique and indexed, so every page is an index range.
    ordering = "map_index"


# One item: the schema generator wraps it in a page (next, previous, results).
ITEMS_EXAMPLE = OpenApiExample(
    "a failed item of a map",
    value={
        "step_id": "research",
        "map_index": 7,
        "kind": "map",
        "status": "failed",
        "attempt": 1,
        "task_id": "0b5cf3a4-5b8e-4f53-9a0e-4d1f1c0f6a21",
        "task_attempts": 3,
        "agent_id": "6f1d2c7e-8a43-4e0b-b1f4-2a9c5d3e7b10",
        "input": {"question": "Who makes grid batteries?", "number": 7},
        "output": None,
        "error": {"message": "the task failed", "task_id": "0b5cf3a4-5b8e-4f53-9a0e-4d1f1c0f6a21"},
        "created_at": "2026-12-04T09:00:00Z",
        "started_at": "2026-12-04T09:00:02Z",
        "finished_at": "2026-12-04T09:01:05Z",
    },
    response_only=True,
)


class MapItemListView(generics.ListAPIView):
    """The items of one map step, in item order, a page at a time (the run's detail only counts them).
    Read like the run's detail: viewers and operators."""

    serializer_class = StepRunSerializer
    filterset_class = MapItemFilter
    filter_backends = [StrictFilterBackend]  # no ?ordering=: item order is the keyset
    pagination_class = MapItemPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator, without a URL
            return StepRun.objects.none()
        return items.map_items(run_id=self.kwargs["run_id"], step_id=self.kwargs["step_id"])

    @extend_schema(
        summary="List a map step's items (status, attempt, agent, task, timing, output, error)",
        tags=["workflow runs"],
        examples=[ITEMS_EXAMPLE],
        responses={200: StepRunSerializer(many=True), 400: NOT_A_MAP, 404: NOT_FOUND},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
