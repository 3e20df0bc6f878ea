"""The request serializers' fast path (StrictSerializer.accepted) agrees with DRF's validation.

For every body of a corpus, valid and invalid (each field set to each of many values, each field left
out, an unknown field), the fast path must accept exactly the bodies DRF accepts, with the same
validated data; everything else falls through to DRF, which explains the problem as before.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from flow_executions.api.serializers import (
    FlowExecutionCreateSerializer,
    StatusChangeSerializer,
    TaskExecutionChangeSerializer,
    TaskExecutionCreateSerializer,
)
from superai_flow.api import validated_body
from task_outputs.api.serializers import TaskOutputChangeSerializer, TaskOutputCreateSerializer


def deep(levels: int):
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def values() -> list:
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return [
        None, "", " ", "\t", "x", "x" * 100, "x" * 101, "x" * 200, "x" * 201, "x" * 255, "x" * 256,
        "a\x00b", "\ud800", "ünïcode", 0, 1, -1, 2**31, 2**63, 1.5, float("inf"), True, False,
        [], ["a"], ["a", "a"], ["a"] * 50, ["a"] * 51, [""], [" "], ["x" * 100], ["x" * 101], [1], [None],
        ["a\x00"], [["a"]], {}, {"a": 1}, {"a": {"b": [1, "two", None]}}, {"k\x00": 1}, {"k": "\ud800"},
        {"n": float("inf")}, deep(settings.API_MAX_JSON_DEPTH - 1), deep(settings.API_MAX_JSON_DEPTH),
        {"big": "x" * settings.API_MAX_SUMMARY_BYTES},
        str(uuid.uuid4()), uuid.uuid4().hex, f"urn:uuid:{uuid.uuid4()}", f"{{{uuid.uuid4()}}}", "not-a-uuid",
        "queued", "running", "completed", "failed", "stale", "deleted", "COMPLETED", "bogus",
        "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00", "2026-01-01 00:00:00 02:00", "2026-01-01T00:00:00",
        "2026-13-01T00:00:00Z", soon, later,
    ]  # fmt: skip


VALID_BODIES = {
    TaskOutputCreateSerializer: {
        "organization_id": str(uuid.uuid4()),
        "flow_execution_id": str(uuid.uuid4()),
        "task_name": "extract-text",
        "summary": {"pages": 10},
        "output": {"text": "x" * 800},
        "tags": ["bench", "pdf"],
        "status": "completed",
    },
    TaskOutputChangeSerializer: {"status": "stale", "tags": ["a"], "modified_by": "me"},
    FlowExecutionCreateSerializer: {"organization_id": str(uuid.uuid4()), "flow_name": "ingest", "flow_version": 2},
    StatusChangeSerializer: {"status": "running"},
    TaskExecutionCreateSerializer: {
        "organization_id": str(uuid.uuid4()),
        "flow_execution_id": str(uuid.uuid4()),
        "task_name": "extract",
        "attempt": 2,
    },
    TaskExecutionChangeSerializer: {"status": "completed", "retries": 1, "started_at": "2026-01-01T00:00:00Z"},
}


def corpus(serializer_class) -> list[dict]:
    base = VALID_BODIES[serializer_class]
    writable = [name for name, field in serializer_class._declared_fields.items() if not field.read_only]
    bodies = [base, {}, {**base, "unknown": 1}, {**base, "id": str(uuid.uuid4())}]
    bodies += [{key: value for key, value in base.items() if key != name} for name in base]
    bodies += [{**base, name: value} for name in writable for value in values()]
    return bodies


@pytest.mark.parametrize("serializer_class", list(VALID_BODIES), ids=lambda cls: cls.__name__)
def test_the_fast_path_accepts_exactly_what_drf_accepts_with_the_same_data(serializer_class):
    accepted = rejected = 0
    for body in corpus(serializer_class):
        serializer = serializer_class(data=body)
        valid = serializer.is_valid()
        fast = serializer_class.accepted(body)

        assert (fast is not None) == valid, (body, serializer.errors)
        if valid:
            assert fast == dict(serializer.validated_data), body
        accepted, rejected = accepted + valid, rejected + (not valid)

    assert accepted > 20 and rejected > 20  # the corpus has plenty of both


def test_a_field_without_a_fast_path_sends_every_body_through_drf():
    from rest_framework import serializers

    from superai_flow.serializers import StrictSerializer

    class WithPlainField(StrictSerializer):
        name = serializers.CharField()

    assert WithPlainField.accepted({"name": "x"}) is None


def test_validated_body_takes_the_fast_path_and_explains_what_it_passes_on(rf):
    from rest_framework.exceptions import ValidationError
    from rest_framework.request import Request

    from superai_flow.parsers import StrictJSONParser

    def body_of(data: bytes) -> Request:
        return Request(rf.post("/", data, content_type="application/json"), parsers=[StrictJSONParser()])

    with pytest.raises(ValidationError) as raised:
        validated_body(body_of(b'{"task_name": "", "tags": "a"}'), TaskOutputCreateSerializer)
    assert set(raised.value.detail) == {"organization_id", "flow_execution_id", "task_name", "summary", "tags"}

    base = VALID_BODIES[TaskOutputCreateSerializer]
    body = validated_body(body_of(json.dumps(base).encode()), TaskOutputCreateSerializer)
    assert body["organization_id"] == uuid.UUID(base["organization_id"])
    assert body["modified_by"] == "system" and body["task_execution_id"] is None
