"""POST /api/v1/task-outputs: every validation rule and status code of the contract."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from flow_executions.lifecycle import Status
from flow_executions.models import TaskExecution
from task_outputs.models import TaskOutput
from tests.helpers import detail_codes, error_of

URL = "/api/v1/task-outputs"
RESPONSE_FIELDS = [
    "id",
    "flow_execution_id",
    "organization_id",
    "flow_version",
    "task_execution_id",
    "task_name",
    "status",
    "summary",
    "output",
    "tags",
    "modified_by",
    "created_at",
    "updated_at",
]


def body_for(flow, **fields):
    body = {
        "flow_execution_id": str(flow.id),
        "organization_id": str(flow.organization_id),
        "task_name": "extract-text",
        "summary": {"pages": 10, "word_count": 5000},
    }
    body.update(fields)
    return body


def post_raw(client, data: bytes | str, content_type="application/json", **extra):
    return client.generic("POST", URL, data=data, content_type=content_type, **extra)


# --- Success ------------------------------------------------------------------------------------


def test_create_answers_201_with_the_stored_record(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, output={"text": "hi"}, tags=["pdf"], status="completed"))

    assert response.status_code == 201
    data = response.json()
    assert list(data) == RESPONSE_FIELDS
    stored = TaskOutput.objects.get()
    assert data["id"] == str(stored.id)
    assert data["organization_id"] == str(flow_a.organization_id)
    assert data["flow_version"] == 3 == stored.flow_version
    assert data["summary"] == {"pages": 10, "word_count": 5000} == stored.summary
    assert data["output"] == {"text": "hi"}
    assert data["tags"] == ["pdf"]
    assert data["status"] == "completed"
    assert data["created_at"].endswith("Z") and data["updated_at"].endswith("Z")


def test_create_sets_location_to_the_new_record(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a))

    location = response["Location"]
    assert location == f"/api/v1/task-outputs/{response.json()['id']}"
    assert client_a.get(location).json() == response.json()


def test_create_applies_defaults(client_a, flow_a):
    data = client_a.post(URL, body_for(flow_a)).json()

    assert data["status"] == "queued"
    assert data["output"] is None
    assert data["tags"] == []
    assert data["modified_by"] == "system"
    assert data["task_execution_id"] is None
    created = datetime.fromisoformat(data["created_at"])
    assert abs(created - timezone.now()) < timedelta(seconds=30)


@pytest.mark.parametrize("path", [URL, URL + "/"])
def test_create_works_with_and_without_trailing_slash(client_a, flow_a, path):
    response = client_a.post(path, body_for(flow_a))

    assert response.status_code == 201


@pytest.mark.parametrize(
    "summary", [{"pages": 10}, {}, "Processed 10 pages", "", {"nested": {"rows": [1, 2, {"x": None}]}}]
)
def test_create_accepts_an_object_or_a_string_summary(client_a, flow_a, summary):
    response = client_a.post(URL, body_for(flow_a, summary=summary))

    assert response.status_code == 201
    assert response.json()["summary"] == summary


@pytest.mark.parametrize("output", [None, 1, 2.5, "text", [1, "a"], {"a": {"b": [True, False, None]}}, True])
def test_create_accepts_any_json_output(client_a, flow_a, output):
    response = client_a.post(URL, body_for(flow_a, output=output))

    assert response.status_code == 201
    assert response.json()["output"] == output
    assert TaskOutput.objects.get().output == output


def test_create_drops_duplicate_tags_keeping_order(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, tags=["b", "a", "b", "c", "a"]))

    assert response.json()["tags"] == ["b", "a", "c"]


def test_create_stores_null_tags_as_an_empty_list(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, tags=None))

    assert response.status_code == 201
    assert response.json()["tags"] == []
    assert TaskOutput.objects.get().tags == []


def test_create_counts_the_tag_limit_before_dropping_duplicates(client_a, flow_a):
    fifty = client_a.post(URL, body_for(flow_a, tags=["same"] * 50))
    fifty_one = client_a.post(URL, body_for(flow_a, tags=["same"] * 51))

    assert fifty.status_code == 201 and fifty.json()["tags"] == ["same"]
    error_of(fifty_one, 422, "validation_error")
    assert detail_codes(fifty_one) == {"tags": "max_length"}


def test_create_counts_lengths_in_code_points(client_a, flow_a):
    name = "😀" * 200  # 800 bytes of UTF-8, 200 code points
    response = client_a.post(URL, body_for(flow_a, task_name=name, tags=["é" * 100]))

    assert response.status_code == 201
    assert response.json()["task_name"] == name


def test_create_keeps_task_name_exactly_as_sent(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, task_name="  Extract Text "))

    assert response.json()["task_name"] == "  Extract Text "


def test_create_ignores_a_client_updated_at(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, updated_at="1999-01-01T00:00:00Z"))

    assert response.status_code == 201
    assert not response.json()["updated_at"].startswith("1999")


@pytest.mark.parametrize("status", [s for s in Status.values if s != Status.DELETED])
def test_create_accepts_every_status_but_deleted(client_a, flow_a, status):
    response = client_a.post(URL, body_for(flow_a, status=status))

    assert response.status_code == 201
    assert response.json()["status"] == status


def test_create_links_a_task_execution_of_the_same_flow(client_a, flow_a):
    task_execution = TaskExecution.objects.create(
        organization=flow_a.organization, flow_execution=flow_a, task_name="extract-text"
    )
    response = client_a.post(URL, body_for(flow_a, task_execution_id=str(task_execution.id)))

    assert response.status_code == 201
    assert response.json()["task_execution_id"] == str(task_execution.id)


# --- created_at ---------------------------------------------------------------------------------


def test_create_backfills_created_at_from_the_past(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, created_at="2024-03-01T10:00:00.123456+02:00"))

    assert response.status_code == 201
    assert response.json()["created_at"] == "2024-03-01T08:00:00.123456Z"
    assert TaskOutput.objects.get().created_at == datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)


def test_create_accepts_created_at_slightly_in_the_future(client_a, flow_a):
    soon = (timezone.now() + timedelta(minutes=4)).isoformat()
    response = client_a.post(URL, body_for(flow_a, created_at=soon))

    assert response.status_code == 201


def test_create_rejects_created_at_more_than_five_minutes_ahead(client_a, flow_a):
    later = (timezone.now() + timedelta(minutes=6)).isoformat()
    response = client_a.post(URL, body_for(flow_a, created_at=later))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"created_at": "in_future"}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2024-03-01T10:00:00", "naive"),
        ("2024-03-01", "naive"),
        ("yesterday", "invalid"),
        (1709287200, "invalid"),
        (None, "null"),
        ("0001-01-01T00:00:00+05:00", "out_of_range"),
    ],
)
def test_create_rejects_bad_created_at(client_a, flow_a, value, code):
    response = client_a.post(URL, body_for(flow_a, created_at=value))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"created_at": code}


# --- 422: field shapes --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["flow_execution_id", "organization_id", "task_name", "summary"])
def test_create_requires_each_required_field(client_a, flow_a, field):
    body = body_for(flow_a)
    del body[field]
    response = client_a.post(URL, body)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: "required"}


def test_create_lists_every_failing_field(client_a, flow_a):
    response = client_a.post(URL, {"task_name": "", "summary": [], "tags": "x", "sumary": {}})

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {
        "flow_execution_id": "required",
        "organization_id": "required",
        "task_name": "blank",
        "summary": "type",
        "tags": "not_a_list",
        "sumary": "unknown_field",
    }


@pytest.mark.parametrize("field", ["sumary", "flow_version", "extra", "Task_name"])
def test_create_rejects_unknown_fields(client_a, flow_a, field):
    response = client_a.post(URL, body_for(flow_a, **{field: 1}))

    body = error_of(response, 422, "validation_error")
    assert body["error"]["details"] == [{"field": field, "code": "unknown_field", "message": "Unknown field."}]
    assert TaskOutput.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("flow_execution_id", 12345, "invalid"),
        ("flow_execution_id", "not-a-uuid", "invalid"),
        ("organization_id", ["x"], "invalid"),
        ("task_name", 5, "invalid"),
        ("task_name", True, "invalid"),
        ("task_name", None, "null"),
        ("task_name", "", "blank"),
        ("task_name", "   ", "blank"),
        ("task_name", "x" * 201, "max_length"),
        ("summary", None, "null"),
        ("summary", [1, 2], "type"),
        ("summary", 10, "type"),
        ("summary", True, "type"),
        ("tags", "pdf", "not_a_list"),
        ("tags", {"a": 1}, "not_a_list"),
        ("status", "done", "invalid_choice"),
        ("status", "deleted", "invalid_choice"),
        ("status", 1, "invalid_choice"),
        ("status", None, "null"),
        ("modified_by", "x" * 256, "max_length"),
        ("modified_by", 7, "invalid"),
        ("task_execution_id", 7, "invalid"),
        ("id", "123", "invalid"),
        ("id", 123, "invalid"),
    ],
)
def test_create_rejects_wrong_shapes_without_coercion(client_a, flow_a, field, value, code):
    response = client_a.post(URL, body_for(flow_a, **{field: value}))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}
    assert TaskOutput.objects.count() == 0


@pytest.mark.parametrize(
    ("tags", "field", "code"),
    [
        ([1], "tags.0", "invalid"),
        (["ok", ""], "tags.1", "blank"),
        (["x" * 101], "tags.0", "max_length"),
        (["ok", None], "tags.1", "null"),
    ],
)
def test_create_rejects_bad_tags(client_a, flow_a, tags, field, code):
    response = client_a.post(URL, body_for(flow_a, tags=tags))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: code}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"task_name": "a\x00b"}, "task_name"),
        ({"modified_by": "\x00"}, "modified_by"),
        ({"tags": ["ok", "n\x00l"]}, "tags.1"),
        ({"summary": {"text": "a\x00b"}}, "summary.text"),
        ({"summary": "a\x00b"}, "summary"),
        ({"output": {"deep": ["\x00"]}}, "output.deep.0"),
    ],
)
def test_create_rejects_nul_characters_anywhere(client_a, flow_a, fields, field):
    response = client_a.post(URL, body_for(flow_a, **fields))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {field: "invalid_text"}
    assert TaskOutput.objects.count() == 0


def test_create_rejects_nul_in_json_object_keys(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, output={"bad\x00key": 1}))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"output": "invalid_text"}


@pytest.mark.parametrize(
    "raw_fragment",
    [
        '"task_name": "\\ud800"',
        '"summary": {"text": "\\udfff"}',
        '"output": ["ok", "\\ud83d"]',
        '"output": {"\\ud800": 1}',
        '"tags": ["\\udc00"]',
    ],
)
def test_create_rejects_lone_surrogates(client_a, flow_a, raw_fragment):
    body = json.dumps(body_for(flow_a))[:-1] + ", " + raw_fragment + "}"
    response = post_raw(client_a, body)

    error_of(response, 422, "validation_error")
    assert all(d["code"] == "invalid_text" for d in response.json()["error"]["details"])
    assert TaskOutput.objects.count() == 0


def test_an_unknown_field_named_with_a_lone_surrogate_still_gets_a_clean_422(client_a, flow_a):
    body = json.dumps(body_for(flow_a))[:-1] + ', "bad\\udc80name": 1}'
    response = post_raw(client_a, body)

    error_of(response, 422, "validation_error")
    assert response.json()["error"]["details"][0]["field"] == "bad\udc80name"


def test_create_accepts_a_correctly_paired_surrogate_escape(client_a, flow_a):
    body = json.dumps(body_for(flow_a))[:-1] + ', "tags": ["\\ud83d\\ude00"]}'
    response = post_raw(client_a, body)

    assert response.status_code == 201
    assert response.json()["tags"] == ["😀"]


def test_create_rejects_json_nested_deeper_than_the_limit(client_a, flow_a, settings):
    settings.API_MAX_JSON_DEPTH = 10
    deep = {}
    for _ in range(11):
        deep = {"a": deep}
    response = client_a.post(URL, body_for(flow_a, output=deep))

    error_of(response, 422, "validation_error")
    assert {d["code"] for d in response.json()["error"]["details"]} == {"max_depth"}


def test_create_rejects_extremely_deep_json_without_a_server_error(client_a, flow_a):
    depth = 10_000
    output = "[" * depth + "]" * depth
    body = json.dumps(body_for(flow_a))[:-1] + f', "output": {output}}}'
    response = post_raw(client_a, body)

    error_of(response, 422, "validation_error")
    assert TaskOutput.objects.count() == 0


def test_create_rejects_numbers_beyond_the_float_range(client_a, flow_a):
    body = json.dumps(body_for(flow_a))[:-1] + ', "summary": {"big": 1e400}}'
    response = post_raw(client_a, body)

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"summary.big": "out_of_range"}


def test_create_stores_large_integers_exactly(client_a, flow_a):
    big = 2**200
    response = post_raw(client_a, json.dumps(body_for(flow_a, output={"n": big})))

    assert response.status_code == 201
    assert TaskOutput.objects.get().output == {"n": big}


def test_create_rejects_an_oversized_summary(client_a, flow_a, settings):
    settings.API_MAX_SUMMARY_BYTES = 100
    response = client_a.post(URL, body_for(flow_a, summary={"text": "x" * 200}))

    error_of(response, 422, "validation_error")
    assert detail_codes(response) == {"summary": "too_large"}


# --- 400, 413, 415 ------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["{not json", '{"a": 1,}', "{'a': 1}", '{"a": NaN}', '{"a": Infinity}', "\xff"])
def test_create_rejects_a_body_that_is_not_json(client_a, raw):
    response = post_raw(client_a, raw.encode("latin-1"))

    error_of(response, 400, "parse_error")


@pytest.mark.parametrize("raw", ["[]", '["a"]', '"text"', "42", "null", "true"])
def test_create_rejects_json_that_is_not_an_object(client_a, raw):
    response = post_raw(client_a, raw)

    error_of(response, 400, "bad_request")


def test_create_rejects_an_empty_body(client_a):
    response = post_raw(client_a, b"")

    error_of(response, 400, "bad_request")


def test_create_rejects_a_body_over_the_size_limit(client_a, flow_a, settings):
    settings.API_MAX_BODY_BYTES = 4096
    response = client_a.post(URL, body_for(flow_a, output="x" * 5000))

    error_of(response, 413, "payload_too_large")
    assert TaskOutput.objects.count() == 0


def test_create_rejects_two_mebibytes_by_default(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, output="x" * (2 * 1024 * 1024)))

    error_of(response, 413, "payload_too_large")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", ""])
def test_create_rejects_bodies_that_are_not_json(client_a, flow_a, content_type):
    response = post_raw(client_a, json.dumps(body_for(flow_a)), content_type=content_type)

    error_of(response, 415, "unsupported_media_type")


def test_create_accepts_json_with_a_charset_parameter(client_a, flow_a):
    response = post_raw(client_a, json.dumps(body_for(flow_a)), content_type="application/json; charset=utf-8")

    assert response.status_code == 201


# --- 401, 403, 404 ------------------------------------------------------------------------------


def test_create_without_credentials_is_401(anonymous_client, flow_a):
    response = anonymous_client.post(URL, body_for(flow_a))

    error_of(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_create_for_another_organization_is_403(client_a, flow_b):
    response = client_a.post(URL, body_for(flow_b))

    error_of(response, 403, "permission_denied")
    assert detail_codes(response) == {"organization_id": "permission_denied"}
    assert TaskOutput.objects.count() == 0


def test_create_for_an_organization_that_does_not_exist_is_403(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, organization_id=str(uuid.uuid4())))

    error_of(response, 403, "permission_denied")


def test_create_for_a_missing_flow_execution_is_404(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, flow_execution_id=str(uuid.uuid4())))

    error_of(response, 404, "not_found")
    assert detail_codes(response) == {"flow_execution_id": "not_found"}


def test_create_for_another_tenants_flow_execution_is_404(client_a, flow_a, flow_b):
    response = client_a.post(URL, body_for(flow_a, flow_execution_id=str(flow_b.id)))

    error_of(response, 404, "not_found")
    assert detail_codes(response) == {"flow_execution_id": "not_found"}
    assert TaskOutput.objects.count() == 0


def test_create_for_a_deleted_flow_execution_is_404(client_a, flow_a):
    flow_a.status = Status.DELETED
    flow_a.save()
    response = client_a.post(URL, body_for(flow_a))

    error_of(response, 404, "not_found")


def test_create_with_a_missing_task_execution_is_404(client_a, flow_a):
    response = client_a.post(URL, body_for(flow_a, task_execution_id=str(uuid.uuid4())))

    error_of(response, 404, "not_found")
    assert detail_codes(response) == {"task_execution_id": "not_found"}


def test_create_with_a_task_execution_of_another_flow_is_404(client_a, flow_a, make_flow):
    other_flow = make_flow(flow_a.organization)
    task_execution = TaskExecution.objects.create(
        organization=other_flow.organization, flow_execution=other_flow, task_name="x"
    )
    response = client_a.post(URL, body_for(flow_a, task_execution_id=str(task_execution.id)))

    error_of(response, 404, "not_found")
    assert detail_codes(response) == {"task_execution_id": "not_found"}


def test_create_with_another_tenants_task_execution_is_404(client_a, flow_a, flow_b):
    task_execution = TaskExecution.objects.create(
        organization=flow_b.organization, flow_execution=flow_b, task_name="x"
    )
    response = client_a.post(URL, body_for(flow_a, task_execution_id=str(task_execution.id)))

    error_of(response, 404, "not_found")


# --- Order of checks ----------------------------------------------------------------------------


def test_credentials_are_checked_before_the_body(anonymous_client):
    error_of(post_raw(anonymous_client, "{broken"), 401, "not_authenticated")


def test_the_body_is_parsed_before_fields_are_checked(client_a):
    error_of(post_raw(client_a, "[1]"), 400, "bad_request")


def test_field_shapes_are_checked_before_the_organization(client_a, flow_b):
    response = client_a.post(URL, body_for(flow_b, task_name=""))

    error_of(response, 422, "validation_error")


def test_the_organization_is_checked_before_references(client_a, flow_b):
    response = client_a.post(URL, body_for(flow_b, flow_execution_id=str(uuid.uuid4())))

    error_of(response, 403, "permission_denied")


def test_references_are_checked_before_idempotency(client_a, flow_a, make_output):
    existing = make_output(flow_a)
    response = client_a.post(URL, body_for(flow_a, id=str(existing.id), flow_execution_id=str(uuid.uuid4())))

    error_of(response, 404, "not_found")
