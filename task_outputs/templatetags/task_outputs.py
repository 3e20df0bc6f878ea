"""Display helpers for task outputs: readable summaries and pretty, bounded JSON."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()

# Longer pretty-printed JSON is cut here on pages; "Show all" fetches the rest.
JSON_PREVIEW_CHARS = 10_000


def display_value(value: Any) -> str:
    """A scalar as people read it: thousands separators, at most three decimals, true/false, —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


@register.filter
def summary_items(summary: Any) -> list[dict[str, Any]]:
    """A summary object as (key, text) rows; nested objects and lists come with their pretty JSON."""
    if not isinstance(summary, dict):
        return []
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict | list):
            size = len(value)
            noun = ("key" if isinstance(value, dict) else "item") + ("" if size == 1 else "s")
            rows.append(
                {"key": key, "text": f"{size} {noun}", "nested": json.dumps(value, indent=2, ensure_ascii=False)}
            )
        else:
            rows.append({"key": key, "text": display_value(value), "nested": None})
    return rows


@register.filter
def pretty_json(value: Any) -> dict[str, Any]:
    """{"text", "truncated", "size"}: indented JSON, cut at JSON_PREVIEW_CHARS characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return {"text": text[:JSON_PREVIEW_CHARS], "truncated": len(text) > JSON_PREVIEW_CHARS, "size": len(text)}
