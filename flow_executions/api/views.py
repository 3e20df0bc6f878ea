"""The flow and task executions API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from flow_executions.api.filters import FlowExecutionFilterSet, TaskExecutionFilterSet
from flow_executions.api.references import flow_execution_named_in
from flow_executions.api.serializers import (
    FlowExecutionCreateSerializer,
    FlowExecutionDetailSerializer,
    FlowExecutionSerializer,
    StatusChangeSerializer,
    TaskExecutionChangeSerializer,
    TaskExecutionCreateSerializer,
    TaskExecutionSerializer,
)
from flow_executions.selectors import (
    task_output_counts,
    visible_flow_executions,
    visible_task_executions,
)
from flow_executions.services import (
    flow_execution_create,
    flow_execution_delete,
    flow_execution_update,
    task_execution_create,
    task_execution_update,
)
from superai_flow.api import create_response, detail_url, validated_body
from superai_flow.authentication import caller_identity, require_organization, scope_to_caller
from superai_flow.openapi import LOCATION, created, errors


@extend_schema_view(
    list=extend_schema(
        summary="List flow executions", responses={200: FlowExecutionSerializer(many=True), **errors(422)}
    ),
    retrieve=extend_schema(
        summary="Read one flow execution, with counts of its task outputs",
        responses={200: FlowExecutionDetailSerializer, **errors(404)},
    ),
    create=extend_schema(
        summary="Start recording a flow execution",
        request=FlowExecutionCreateSerializer,
        responses=created(FlowExecutionSerializer),
        parameters=[LOCATION],
    ),
    partial_update=extend_schema(
        summary="Change status (lifecycle enforced)",
        request=StatusChangeSerializer,
        responses={200: FlowExecutionSerializer, **errors(400, 404, 409, 413, 415, 422)},
    ),
    destroy=extend_schema(
        summary="Soft-delete a flow execution and everything under it", responses={204: None, **errors(404, 409)}
    ),
)
class FlowExecutionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = FlowExecutionSerializer
    filterset_class = FlowExecutionFilterSet

    def get_queryset(self):
        return scope_to_caller(visible_flow_executions(), self.request)

    def create(self, request):
        body = validated_body(request, FlowExecutionCreateSerializer)
        require_organization(request, body["organization_id"])
        flow_execution, created = flow_execution_create(**body)
        location = detail_url("flow-execution-detail", flow_execution.pk)
        return create_response(FlowExecutionSerializer(flow_execution).data, created=created, location=location)

    def retrieve(self, request, pk=None):
        flow_execution = self.get_object()
        counts = task_output_counts(flow_execution)
        flow_execution.task_output_counts = counts
        flow_execution.task_output_count = sum(counts.values())
        return Response(FlowExecutionDetailSerializer(flow_execution).data)

    def partial_update(self, request, pk=None):
        body = validated_body(request, StatusChangeSerializer)
        flow_execution = flow_execution_update(flow_execution=self.get_object(), actor=caller_identity(request), **body)
        return Response(FlowExecutionSerializer(flow_execution).data)

    def destroy(self, request, pk=None):
        flow_execution_delete(flow_execution=self.get_object(), actor=caller_identity(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(
        summary="List task executions", responses={200: TaskExecutionSerializer(many=True), **errors(422)}
    ),
    retrieve=extend_schema(summary="Read one task execution", responses={200: TaskExecutionSerializer, **errors(404)}),
    create=extend_schema(
        summary="Record an attempt of a task",
        request=TaskExecutionCreateSerializer,
        responses=created(TaskExecutionSerializer),
        parameters=[LOCATION],
    ),
    partial_update=extend_schema(
        summary="Record progress: status, output, error, retries, times",
        request=TaskExecutionChangeSerializer,
        responses={200: TaskExecutionSerializer, **errors(400, 404, 409, 413, 415, 422)},
    ),
)
class TaskExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TaskExecutionSerializer
    filterset_class = TaskExecutionFilterSet

    def get_queryset(self):
        return scope_to_caller(visible_task_executions(), self.request)

    def create(self, request):
        body = validated_body(request, TaskExecutionCreateSerializer)
        flow_execution = flow_execution_named_in(request, body)
        task_execution, created = task_execution_create(flow_execution=flow_execution, **body)
        location = detail_url("task-execution-detail", task_execution.pk)
        return create_response(TaskExecutionSerializer(task_execution).data, created=created, location=location)

    def partial_update(self, request, pk=None):
        body = validated_body(request, TaskExecutionChangeSerializer)
        task_execution = task_execution_update(task_execution=self.get_object(), actor=caller_identity(request), **body)
        return Response(TaskExecutionSerializer(task_execution).data)
