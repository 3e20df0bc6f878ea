"""Resolving the flow execution that a create body names, for every API that creates under one."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request

from flow_executions.models import FlowExecution
from flow_executions.selectors import referenced_flow_execution
from superai_flow.authentication import require_organization


def flow_execution_named_in(request: Request, body: dict[str, Any]) -> FlowExecution:
    """Pop `organization_id` and `flow_execution_id` from a validated body and resolve them, in the
    contract's order: 403 unless the caller may act for the organization, then 404 unless the flow
    execution is that organization's and not deleted."""
    organization_id = body.pop("organization_id")
    require_organization(request, organization_id)
    return referenced_flow_execution(organization_id=organization_id, flow_execution_id=body.pop("flow_execution_id"))
