"""The flow executions API: create, list, read."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import mixins, viewsets
from rest_framework.response import Response

from flow_executions.api.filters import FlowExecutionFilterSet
from flow_executions.api.serializers import (
    FlowExecutionCreateSerializer,
    FlowExecutionDetailSerializer,
    FlowExecutionSerializer,
)
from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from flow_executions.selectors import task_output_counts
from flow_executions.services import flow_execution_create
from superai_flow.api import create_response, validated_body
from superai_flow.authentication import require_organization, scope_to_caller


class FlowExecutionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = FlowExecutionSerializer
    filterset_class = FlowExecutionFilterSet

    def get_queryset(self):
        return scope_to_caller(FlowExecution.objects.exclude(status=Status.DELETED), self.request)

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
