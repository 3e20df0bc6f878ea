"""Writes for flow executions."""

from __future__ import annotations

import uuid
from typing import Any

from flow_executions.lifecycle import Status
from flow_executions.models import FlowExecution
from superai_flow.db import create_idempotently


def flow_execution_create(
    *,
    organization_id: uuid.UUID,
    flow_name: str,
    flow_version: int = 1,
    input: Any = None,
    status: str = Status.QUEUED,
    modified_by: str = "system",
    id: uuid.UUID | None = None,
) -> tuple[FlowExecution, bool]:
    """Create a flow execution; with a client `id`, a retry returns the stored one (see create_idempotently)."""
    values = {
        "organization_id": organization_id,
        "flow_name": flow_name,
        "flow_version": flow_version,
        "input": input,
        "status": status,
        "modified_by": modified_by,
    }
    return create_idempotently(FlowExecution, id=id, values=values)
