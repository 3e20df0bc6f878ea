"""The task outputs API: create, list, read."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import mixins, viewsets

from flow_executions.lifecycle import Status
from flow_executions.selectors import flow_execution_get, task_execution_get
from superai_flow.api import create_response, validated_body
from superai_flow.authentication import require_organization, scope_to_caller
from superai_flow.exceptions import NotFound, detail
from task_outputs.api.filters import TaskOutputFilterSet
from task_outputs.api.pagination import LiveKeysetPagination
from task_outputs.api.serializers import TaskOutputCreateSerializer, TaskOutputSerializer
from task_outputs.models import TaskOutput
from task_outputs.services import task_output_create


class TaskOutputViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TaskOutputSerializer
    filterset_class = TaskOutputFilterSet
    pagination_class = LiveKeysetPagination

    def get_queryset(self):
        return scope_to_caller(TaskOutput.objects.exclude(status=Status.DELETED), self.request)

    def create(self, request):
        body = validated_body(request, TaskOutputCreateSerializer)
        organization_id = body.pop("organization_id")
        require_organization(request, organization_id)
        flow_execution = flow_execution_get(
            organization_id=organization_id, flow_execution_id=body.pop("flow_execution_id")
        )
        if flow_execution is None:
            raise NotFound(
                "Flow execution not found.",
                details=[
                    detail("flow_execution_id", "not_found", "No flow execution with this id in this organization.")
                ],
            )
        task_execution_id = body.pop("task_execution_id")
        task_execution = None
        if task_execution_id is not None:
            task_execution = task_execution_get(flow_execution=flow_execution, task_execution_id=task_execution_id)
            if task_execution is None:
                raise NotFound(
                    "Task execution not found.",
                    details=[detail("task_execution_id", "not_found", "No task execution with this id in this flow.")],
                )
        output, created = task_output_create(flow_execution=flow_execution, task_execution=task_execution, **body)
        location = reverse("task-output-detail", kwargs={"pk": output.pk})
        return create_response(TaskOutputSerializer(output).data, created=created, location=location)
