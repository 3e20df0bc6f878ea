"""Reads for task outputs: what is visible, and the tag filter of lists."""

from __future__ import annotations

from django.db import connections
from django.db.models import Exists, F, OuterRef, QuerySet

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.json_queries import JSONArrayContainsAll
from task_outputs.models import TaskOutput


def visible_task_outputs() -> QuerySet[TaskOutput]:
    """Task outputs that are not soft-deleted and whose flow execution is not either.

    The flow's condition is an anti-join (NOT EXISTS a deleted flow execution with the output's flow id)
    rather than a join with every flow execution: a query over many outputs then probes the few deleted
    flows, not all of them (a stats query over a million outputs: 0.15 s less, docs/performance.md)."""
    deleted_flow = FlowExecution.objects.filter(pk=OuterRef("flow_execution_id"), status=Status.DELETED)
    return TaskOutput.objects.exclude(status=Status.DELETED).exclude(Exists(deleted_flow))


# What a tag-filtered list is ordered by on PostgreSQL: its tag row's copies of created_at and of the id.
TAGGED_AT, TAGGED_ID = "tagged_at", "tagged_id"


def with_tags(queryset: QuerySet[TaskOutput], tags: list[str], *, in_order: bool = True) -> QuerySet[TaskOutput]:
    """The outputs that have every one of `tags`; `in_order=False` where every match is read (export, stats).

    On PostgreSQL the first tag joins the output's row in `task_outputs_tag` (migration 0012), keyed by
    (organization_id, tag, created_at, task_output_id), and `in_tag_order` then orders by that row: the
    list reads the key backwards from the newest and fetches only the outputs of the page, where the GIN
    index on tags found every match and sorted them first (docs/performance.md, "Tags: a key read newest
    first"). Any further tag is a containment test on the fetched outputs. Ordering by the output's own
    created_at instead would need the join to compare created_at too, and the planner, which multiplies
    the two comparisons' selectivities, would then expect about one row and hash-join every match of a
    common tag. Where every match is read anyway, the GIN index finds them faster than the join (over
    250,000 matches, stats 0.33 s instead of 0.77 s; an export 9.6 s instead of 12.8 s, its rows read in
    created_at order from the outputs' index)."""
    if not in_order or connections[queryset.db].vendor != "postgresql":
        return queryset.filter(JSONArrayContainsAll("tags", tags))
    first, *rest = tags
    queryset = queryset.filter(tag_rows__tag=first, tag_rows__organization_id=F("organization_id"))
    queryset = queryset.annotate(**{TAGGED_AT: F("tag_rows__created_at"), TAGGED_ID: F("tag_rows__task_output_id")})
    return queryset.filter(JSONArrayContainsAll("tags", rest)) if rest else queryset


def in_tag_order(queryset: QuerySet[TaskOutput]) -> QuerySet[TaskOutput]:
    """A tag-filtered queryset ordered by created_at, ordered by its tag row's created_at (the same value).

    The id stays the last key: the join makes it the tag row's task_output_id for the planner, so the tag
    key's order serves both; pages seek with the tag row's columns (task_outputs.api.pagination)."""
    if TAGGED_AT not in queryset.query.annotations:
        return queryset
    order = list(queryset.query.order_by or queryset.model._meta.ordering)
    if order[0].lstrip("-") != "created_at":
        return queryset
    return queryset.order_by(*(name.replace("created_at", TAGGED_AT) for name in order))
