"""The task outputs API: create, list, read, change (stale, deleted, tags), soft delete."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from superai_flow.api import create_response, detail_url, validated_body
from superai_flow.authentication import (
    caller_identity,
    caller_organization_ids,
    require_organization,
    scope_to_caller,
)
from superai_flow.openapi import LOCATION, created, errors
from task_outputs.api.filters import TaskOutputFilterSet, TaskOutputPageFilterSet
from task_outputs.api.pagination import LiveKeysetPagination
from task_outputs.api.serializers import (
    TaskOutputChangeSerializer,
    TaskOutputCreateSerializer,
    TaskOutputSerializer,
    represent,
    requested_fields,
    task_output_data,
)
from task_outputs.export import export_format, export_response
from task_outputs.selectors import visible_task_outputs
from task_outputs.services import task_output_create, task_output_delete, task_output_update
from task_outputs.stats import stats_query, task_output_stats

LIVE_CURSOR = OpenApiParameter(
    "X-Live-Cursor",
    str,
    location=OpenApiParameter.HEADER,
    response=[200],
    description="A live cursor for `?after=` or a WebSocket resume: taken before this list's first page.",
)
TAG = OpenApiParameter(
    "tag", str, many=True, explode=True, description="Repeatable: every tag given must be present (commas are text)."
)
FIELDS = OpenApiParameter(
    "fields",
    str,
    description="Only these keys of each record, comma-separated (`id,task_name,summary.pages`); a `summary.<path>` "
    "entry returns `summary` reduced to those paths. An unknown name is a 422.",
)
LIST_NOTES = """Also filters on values inside `summary`: `summary.<key>[.<key>...]=<value>` (JSON equality; plain
text when the value is not JSON) and `summary.<path>__gt|__gte|__lt|__lte=<number>`. `after=<live cursor>`
returns what was written since that cursor, oldest first. Unknown parameters are refused (422)."""


@extend_schema_view(
    list=extend_schema(
        summary="List task outputs",
        description=LIST_NOTES,
        parameters=[LIVE_CURSOR, TAG, FIELDS],
        responses={200: TaskOutputSerializer(many=True), **errors(422)},
    ),
    retrieve=extend_schema(
        summary="Read one task output",
        parameters=[FIELDS],
        responses={200: TaskOutputSerializer, **errors(404, 422)},
    ),
    create=extend_schema(
        summary="Create a task output",
        description="Send your own `id` to make retries safe: the same payload again answers 200, another 409.",
        request=TaskOutputCreateSerializer,
        responses=created(TaskOutputSerializer),
        parameters=[LOCATION],
    ),
    export=extend_schema(
        summary="Export task outputs (NDJSON or CSV, streamed)",
        description="Every output the list's filters select, in its ordering, as one download; see docs/api.md, "
        '"Export". At most EXPORTS_AT_ONCE run at once per server process (429 `too_many_requests` beyond).',
        parameters=[
            TAG,
            FIELDS,
            OpenApiParameter("format", str, enum=["ndjson", "csv"], description="`ndjson` (default) or `csv`."),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="One record per line."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="A header, then one line per record."),
            **errors(422),
        },
    ),
    stats=extend_schema(
        summary="Counts and summary-value statistics per group",
        description='The list\'s filters select the outputs; see docs/api.md, "Stats".',
        parameters=[
            TAG,
            OpenApiParameter(
                "group_by",
                str,
                many=True,
                explode=True,
                enum=["task_name", "status", "flow_execution_id", "tag", "hour", "day"],
                description="Repeatable (or comma-separated), at most 2.",
            ),
            OpenApiParameter(
                "metric", str, many=True, explode=True, description="`summary.<path>`, repeatable, at most 5."
            ),
        ],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="`{groups, total}`."), **errors(422)},
    ),
    partial_update=extend_schema(
        summary="Mark stale or deleted, retag",
        request=TaskOutputChangeSerializer,
        responses={200: TaskOutputSerializer, **errors(400, 404, 409, 413, 415, 422)},
    ),
    destroy=extend_schema(summary="Soft-delete a task output", responses={204: None, **errors(404, 409)}),
)
class TaskOutputViewSet(viewsets.GenericViewSet):
    serializer_class = TaskOutputSerializer
    pagination_class = LiveKeysetPagination
    filtered_actions = ("list", "export", "stats")

    def extra_query_params(self) -> tuple[str, ...]:
        """What the action takes besides the filters (and, for the list, pagination): superai_flow.filters."""
        return {"export": ("fields", "format"), "stats": ("group_by", "metric")}.get(self.action, ("fields",))

    @property
    def filterset_class(self):
        return TaskOutputPageFilterSet if self.action == "list" else TaskOutputFilterSet

    def get_queryset(self):
        return scope_to_caller(visible_task_outputs(), self.request)

    def list(self, request):
        fields = requested_fields(request)
        queryset = self.filter_queryset(self.get_queryset())
        if fields is not None:
            queryset = queryset.only(*fields.columns)  # e.g. no `output`, which may be large, unless asked for
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response([represent(output, fields) for output in page])

    @action(detail=False, methods=["get"])
    def export(self, request):
        fields = requested_fields(request)
        fmt = export_format(request)
        queryset = self.filter_queryset(self.get_queryset())
        if fields is not None:
            queryset = queryset.only(*fields.columns)
        organization_ids = caller_organization_ids(request)
        head = request.method == "HEAD"
        return export_response(queryset, fields=fields, fmt=fmt, organization_ids=organization_ids, head=head)

    @action(detail=False, methods=["get"])
    def stats(self, request):
        query = stats_query(request)
        visible = self.get_queryset()
        return Response(task_output_stats(self.filter_queryset(visible), query, scope=visible))

    def retrieve(self, request, pk=None):
        fields = requested_fields(request)
        return Response(represent(self.get_object(), fields))

    # API-key creates run without a request transaction (TenantScopeMiddleware): the service scopes its
    # INSERT's own statement to the key's organization, one round trip in all (docs/performance.md).
    statement_scoped_actions = ("create",)

    def create(self, request):
        body = validated_body(request, TaskOutputCreateSerializer)
        require_organization(request, body["organization_id"])
        output, created = task_output_create(**body, statement_scope=caller_organization_ids(request) or ())
        location = detail_url("task-output-detail", output.pk)
        return create_response(task_output_data(output), created=created, location=location)

    def partial_update(self, request, pk=None):
        body = validated_body(request, TaskOutputChangeSerializer)
        output = task_output_update(task_output=self.get_object(), actor=caller_identity(request), **body)
        return Response(task_output_data(output))

    def destroy(self, request, pk=None):
        task_output_delete(task_output=self.get_object(), actor=caller_identity(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
