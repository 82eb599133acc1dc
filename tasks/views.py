import asyncio
import time

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import JsonResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import offered
from orchestrator_project.accounts.permissions import IsOperator
from orchestrator_project.accounts.roles import is_agent, is_operator
from orchestrator_project.pagination import KeysetPagination

from . import services
from .filters import TaskFilter
from .models import TERMINAL_STATUSES, Task, TaskStatus
from .serializers import (
    AssignSerializer,
    BulkCreateResponseSerializer,
    ExecuteResponseSerializer,
    ResultReportSerializer,
    TaskBulkCreateSerializer,
    TaskCreatedSerializer,
    TaskCreateSerializer,
    TaskDetailSerializer,
    TaskListSerializer,
    TaskSerializer,
    plainly_valid_task,
)

UUID_PATTERN = "[0-9a-fA-F-]{36}"
CONFLICT = OpenApiResponse(description="Illegal state change (the message says why)")
NOT_FOUND = OpenApiResponse(description="Unknown task")


class IsOperatorOrAssignedAgent(IsOperator):
    """Results come from the agent the task is assigned to (checked in the service) or an operator."""

    def has_permission(self, request, view):
        return is_operator(request.user) or is_agent(request.user)


# A bulk request's key is stored on each of its tasks with "#index" (up to "#999") after it, in a column of
# 255 characters.
BULK_KEY_MAX_LENGTH = 250


def idempotency_key(request, *, max_length):
    """The request's Idempotency-Key header, checked, or None."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= max_length and key.isprintable()):
        raise ValidationError({"Idempotency-Key": [f"Must be 1 to {max_length} printable characters."]})
    return key


@extend_schema_view(
    list=extend_schema(summary="List tasks", tags=["tasks"]),
    retrieve=extend_schema(
        summary="Get a task with its events and attempts",
        tags=["tasks"],
        responses={200: TaskDetailSerializer, 404: NOT_FOUND},
    ),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Task.objects.all()
    lookup_field = "task_id"
    lookup_value_converter = "uuid"  # a malformed id is an unknown URL (404), like an agent's
    filterset_class = TaskFilter
    pagination_class = KeysetPagination
    # Not finished_at: keyset pages cannot hold a position on a column that may be NULL (the unfinished
    # rows fell out of `?ordering=finished_at`). A finished row's last change, updated_at, is its end.
    ordering_fields = ["created_at", "priority", "status", "updated_at"]
    ordering = ["-created_at", "task_id"]

    def get_serializer_class(self):
        if self.action == "list":
            return TaskListSerializer
        if self.action == "retrieve":
            return TaskDetailSerializer
        return TaskSerializer

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "list":
            return queryset.defer("input_data", "result", "avoid_agents", "request_fingerprint")
        return queryset

    def get_permissions(self):
        if self.action == "result":
            return [IsOperatorOrAssignedAgent()]
        return super().get_permissions()

    @extend_schema(
        summary="Create a task",
        tags=["tasks"],
        request=TaskCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat-safe creation: the same key returns the same task.",
            )
        ],
        responses={
            201: TaskCreatedSerializer,
            200: TaskCreatedSerializer,
            400: OpenApiResponse(description="Invalid"),
            409: OpenApiResponse(description="Key reused with a different body"),
        },
    )
    def create(self, request):
        data = plainly_valid_task(request.data)
        if data is None:
            body = TaskCreateSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            data = body.validated_data
        key = idempotency_key(request, max_length=255)
        task, created = services.create_task(data=data, user=request.user, idempotency_key=key)
        answer = TaskSerializer(task).data
        asked = [("required_capabilities", task.required_capabilities)]
        answer["warnings"] = offered.warnings(asked)
        return Response(answer, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        summary="Cancel a task",
        tags=["tasks"],
        request=None,
        responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    def destroy(self, request, task_id=None):
        return Response(TaskSerializer(services.cancel_task(task_id=task_id)).data)

    @extend_schema(
        summary="Create up to 1,000 tasks at once (all or nothing)",
        tags=["tasks"],
        request=TaskBulkCreateSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat-safe creation: the same key returns the tasks the first request made "
                f"(at most {BULK_KEY_MAX_LENGTH} characters; each task keeps it as `key#index`).",
            )
        ],
        responses={
            201: BulkCreateResponseSerializer,
            200: BulkCreateResponseSerializer,
            400: OpenApiResponse(description="Invalid; nothing was created"),
            409: OpenApiResponse(description="Key reused with a different body"),
        },
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        body = TaskBulkCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = body.validated_data["tasks"]
        key = idempotency_key(request, max_length=BULK_KEY_MAX_LENGTH)
        if key is None:
            tasks, created = services.create_tasks_bulk(items=items, user=request.user), True
        else:
            tasks, created = services.create_tasks_bulk_once(
                items=items, user=request.user, idempotency_key=key
            )
        # A replay's tasks name their places in the request: one deleted since shifts the list.
        places = [services.bulk_place(t) for t in tasks] if key is not None else range(len(tasks))
        asked = [
            (f"tasks[{i}].required_capabilities", t.required_capabilities)
            for i, t in zip(places, tasks, strict=True)
        ]
        warnings = offered.warnings(asked)
        return Response(
            {"count": len(tasks), "task_ids": [str(t.task_id) for t in tasks], "warnings": warnings},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        summary="Assign a task to an agent (or the best one)",
        tags=["tasks"],
        request=AssignSerializer,
        responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, task_id=None):
        body = AssignSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        task = services.assign_task(task_id=task_id, agent_id=body.validated_data["agent_id"])
        return Response(TaskSerializer(task).data)

    @extend_schema(
        summary="Run a failed or cancelled task again",
        tags=["tasks"],
        request=None,
        responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, task_id=None):
        return Response(TaskSerializer(services.retry_task(task_id=task_id)).data)

    @extend_schema(
        summary="Report the result of a task accepted with 202",
        tags=["tasks"],
        request=ResultReportSerializer,
        parameters=[
            OpenApiParameter(
                "attempt",
                int,
                description="The attempt being reported (from callback_url); a superseded attempt gets 409.",
            )
        ],
        responses={200: TaskSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def result(self, request, task_id=None):
        body = ResultReportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attempt = request.query_params.get("attempt")
        if attempt is not None and not attempt.isdigit():
            raise ValidationError({"attempt": ["Must be a positive integer."]})
        task = services.report_result(
            task_id=task_id,
            attempt=int(attempt) if attempt else None,
            agent=request.user.agent if is_agent(request.user) else None,
            **body.validated_data,
        )
        return Response(TaskSerializer(task).data)


def settled(response):
    """A 502 or 504 of /execute reports the task's outcome, not a fault of the server: the access line
    records it, and Django's request logger is told it has been logged (it would log an ERROR)."""
    response._has_been_logged = True
    return response


def execute_response(task):
    body = {
        "task_id": str(task.task_id),
        "status": task.status,
        "result": task.result,
        "agent_id": str(task.assigned_agent_id) if task.assigned_agent_id else None,
    }
    if task.status == TaskStatus.COMPLETED:
        return status.HTTP_200_OK, body
    if task.status == TaskStatus.FAILED:
        return status.HTTP_502_BAD_GATEWAY, {
            **body,
            "error": task.error,
            "detail": "The task failed after its retries.",
        }
    if task.status == TaskStatus.CANCELLED:
        return status.HTTP_409_CONFLICT, {**body, "detail": "The task was cancelled."}
    return status.HTTP_504_GATEWAY_TIMEOUT, {
        **body,
        "detail": f"The task is still {task.status}; follow it with GET /api/v1/tasks/{task.task_id}.",
    }


class ExecuteTaskView(APIView):
    # Synchronous execution: the sync part authenticates and starts the task; the wait is async
    # (execute_task below). Not a docstring, which the schema would show as the operation's description.

    permission_classes = [IsOperator]

    @extend_schema(
        summary="Execute a task and wait for its result",
        description="Operators only. Starts the task now, or joins its execution if it is already under "
        "way (a pending task is dispatched even if it was created with `auto_dispatch: false`; one assigned "
        "by hand is sent to its agent), then waits for the outcome: at most `EXECUTE_MAX_WAIT_SECONDS`, "
        "as long as its attempts could take, and not past its `deadline`. A task that has already finished "
        "answers at once.\n\n"
        "- 200: completed, with its `result`.\n"
        "- 502: failed after its retries, with its `error`.\n"
        "- 504: still running when the wait ended; it goes on (follow it with "
        "`GET /api/v1/tasks/{task_id}`).\n"
        "- 409: cancelled, or no capable agent is available (the task stays pending).",
        tags=["tasks"],
        request=None,
        responses={
            200: ExecuteResponseSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description="No capable agent, or cancelled"),
            502: OpenApiResponse(ExecuteResponseSerializer, description="Failed after retries"),
            504: OpenApiResponse(ExecuteResponseSerializer, description="Still running"),
        },
    )
    def post(self, request, task_id):
        task, wait_seconds = services.prepare_execute(task_id=task_id)
        if task.status in TERMINAL_STATUSES:
            code, body = execute_response(task)
            return settled(Response(body, status=code))
        response = Response(status=status.HTTP_202_ACCEPTED)
        response.wait_for = wait_seconds
        return response


_execute_sync = ExecuteTaskView.as_view()


def _load_task(task_id):
    try:
        return (
            Task.objects.filter(task_id=task_id)
            .only("task_id", "status", "result", "error", "assigned_agent_id")
            .first()
        )
    finally:
        close_old_connections()


async def execute_task(request, task_id):
    """Waiting for an agent must not hold a server thread: Django runs sync views on one shared thread
    under ASGI, so the wait happens here, in the event loop, polling Postgres from the thread pool."""
    response = await sync_to_async(_execute_sync)(request, task_id=task_id)
    wait_seconds = getattr(response, "wait_for", None)
    if wait_seconds is None:
        return response
    load = sync_to_async(_load_task, thread_sensitive=False)
    deadline = time.monotonic() + wait_seconds
    interval = 0.01
    task = await load(task_id)
    while task is not None and task.status not in TERMINAL_STATUSES and time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.25)
        task = await load(task_id)
    code, body = execute_response(task)
    return settled(JsonResponse(body, status=code))


execute_task.cls = ExecuteTaskView  # lets drf-spectacular document the wrapped view
execute_task.initkwargs = {}
# Session-authenticated calls are CSRF-checked by DRF inside the wrapped view; token calls need none.
execute_task.csrf_exempt = True
