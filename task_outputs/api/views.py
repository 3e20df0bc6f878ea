"""The task outputs API: create, list, read, change (stale, deleted, tags), soft delete."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from flow_executions.api.references import flow_execution_named_in
from flow_executions.selectors import referenced_task_execution
from superai_flow.api import create_response, validated_body
from superai_flow.authentication import caller_identity, scope_to_caller
from task_outputs.api.filters import TaskOutputFilterSet
from task_outputs.api.pagination import LiveKeysetPagination
from task_outputs.api.serializers import TaskOutputChangeSerializer, TaskOutputCreateSerializer, TaskOutputSerializer
from task_outputs.selectors import visible_task_outputs
from task_outputs.services import task_output_create, task_output_delete, task_output_update


class TaskOutputViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TaskOutputSerializer
    filterset_class = TaskOutputFilterSet
    pagination_class = LiveKeysetPagination

    def get_queryset(self):
        return scope_to_caller(visible_task_outputs(), self.request)

    def create(self, request):
        body = validated_body(request, TaskOutputCreateSerializer)
        flow_execution = flow_execution_named_in(request, body)
        task_execution_id = body.pop("task_execution_id")
        task_execution = None
        if task_execution_id is not None:
            task_execution = referenced_task_execution(
                flow_execution=flow_execution, task_execution_id=task_execution_id
            )
        output, created = task_output_create(flow_execution=flow_execution, task_execution=task_execution, **body)
        location = reverse("task-output-detail", kwargs={"pk": output.pk})
        return create_response(TaskOutputSerializer(output).data, created=created, location=location)

    def partial_update(self, request, pk=None):
        body = validated_body(request, TaskOutputChangeSerializer)
        output = task_output_update(task_output=self.get_object(), actor=caller_identity(request), **body)
        return Response(TaskOutputSerializer(output).data)

    def destroy(self, request, pk=None):
        task_output_delete(task_output=self.get_object(), actor=caller_identity(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
