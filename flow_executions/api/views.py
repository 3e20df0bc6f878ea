"""The flow and task executions API."""

from __future__ import annotations

from django.urls import reverse
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
from superai_flow.api import create_response, validated_body
from superai_flow.authentication import caller_identity, require_organization, scope_to_caller


class FlowExecutionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = FlowExecutionSerializer
    filterset_class = FlowExecutionFilterSet

    def get_queryset(self):
        return scope_to_caller(visible_flow_executions(), self.request)

    def create(self, request):
        body = validated_body(request, FlowExecutionCreateSerializer)
        require_organization(request, body["organization_id"])
        flow_execution, created = flow_execution_create(**body)
        location = reverse("flow-execution-detail", kwargs={"pk": flow_execution.pk})
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


class TaskExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TaskExecutionSerializer
    filterset_class = TaskExecutionFilterSet

    def get_queryset(self):
        return scope_to_caller(visible_task_executions(), self.request)

    def create(self, request):
        body = validated_body(request, TaskExecutionCreateSerializer)
        flow_execution = flow_execution_named_in(request, body)
        task_execution, created = task_execution_create(flow_execution=flow_execution, **body)
        location = reverse("task-execution-detail", kwargs={"pk": task_execution.pk})
        return create_response(TaskExecutionSerializer(task_execution).data, created=created, location=location)

    def partial_update(self, request, pk=None):
        body = validated_body(request, TaskExecutionChangeSerializer)
        task_execution = task_execution_update(task_execution=self.get_object(), actor=caller_identity(request), **body)
        return Response(TaskExecutionSerializer(task_execution).data)
