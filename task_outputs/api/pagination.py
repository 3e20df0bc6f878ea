"""Task output lists also tell clients where to resume live updates from."""

from __future__ import annotations

from typing import Any

from superai_flow.pagination import KeysetPagination
from task_outputs import live
from task_outputs.selectors import TAGGED_AT, TAGGED_ID


class LiveKeysetPagination(KeysetPagination):
    """Keyset pagination that answers `X-Live-Cursor`: the live cursor taken before the first page's query.

    A client that walks every page and then resumes (WebSocket `resume` or `?after=`) from that cursor
    misses nothing written while it walked, whatever the ordering.
    """

    def public_key(self, name: str) -> str:
        return "created_at" if name == TAGGED_AT else name

    def seek_key(self, queryset, name: str) -> str:
        # A tag-filtered list walks its tag rows' (created_at, task_output_id) key (task_outputs.selectors).
        return TAGGED_ID if name == "id" and TAGGED_ID in queryset.query.annotations else name

    def begin(self) -> dict[str, Any]:
        return {"h": live.current_horizon()}

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        horizon = self.carry.get("h")
        if isinstance(horizon, int):
            response["X-Live-Cursor"] = live.encode_cursor(horizon)
        return response
