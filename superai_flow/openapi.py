"""OpenAPI pieces every API shares: the bearer scheme, the error envelope, responses per kind of call."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class APIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "superai_flow.authentication.APIKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`sfk_...`) of one organization: `Authorization: Bearer <key>`.",
        }


class JSONValueFieldSchema(OpenApiSerializerFieldExtension):
    """Any JSON value; `summary` (a JSON object or a string) says so."""

    target_class = "superai_flow.serializers.JSONValueField"

    def map_serializer_field(self, auto_schema, direction):
        if self.target.types == (dict, str):
            return {"oneOf": [{"type": "object", "additionalProperties": True}, {"type": "string"}]}
        return {}


class ErrorDetailSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The failing field (dotted for nested values), if any.")
    code = serializers.CharField(help_text="A stable, machine-readable code, e.g. `required`, `unknown_field`.")
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="e.g. `validation_error`, `not_found`, `conflict`, `invalid_transition`.")
    message = serializers.CharField()
    details = ErrorDetailSerializer(many=True)


class ErrorEnvelopeSerializer(serializers.Serializer):
    """Every error of every endpoint."""

    error = ErrorSerializer()
    request_id = serializers.CharField(help_text="The X-Request-ID of the request.")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorEnvelopeSerializer, description=description)


ERRORS = {
    400: _error("The body is not JSON, not a JSON object, or empty (`bad_request`, `parse_error`)."),
    401: _error("Missing, unknown or revoked credentials (`not_authenticated`, `authentication_failed`)."),
    403: _error("Not allowed: another organization, or a key without the needed scope (`permission_denied`)."),
    404: _error("No such record for this caller, or a referenced one (`not_found`)."),
    409: _error("The id is taken by a different record, or the lifecycle forbids the change."),
    413: _error("The body is over the size limit (`payload_too_large`)."),
    415: _error("The body is not JSON (`unsupported_media_type`)."),
    422: _error("Field-level validation failed (`validation_error`); `details` lists every failing field."),
    429: _error("Rate limit exceeded (`throttled`); see the Retry-After header."),
    500: _error("Unexpected (`internal_error`); the body never leaks a traceback."),
    503: _error("The database is unreachable (`service_unavailable`); retry later."),
}
ALWAYS = (401, 403, 429, 500, 503)


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {status: ERRORS[status] for status in (*statuses, *ALWAYS)}


LOCATION = OpenApiParameter("Location", str, location=OpenApiParameter.HEADER, response=[200, 201],
                            description="The path of the record.")  # fmt: skip


def created(record) -> dict[int, OpenApiResponse]:
    """A create: 201 for a new record, 200 for an idempotent retry of one, and what can go wrong."""
    return {
        201: OpenApiResponse(record, description="Created."),
        200: OpenApiResponse(record, description="A retry with the same client `id` and payload: the stored record."),
        **errors(400, 404, 409, 413, 415, 422),
    }


def closed_request_bodies(result, generator, request, public):
    """Postprocessing hook: request bodies allow no other properties (the API answers 422 `unknown_field`)."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_STREAM = {
    "operationId": "task_outputs_stream",
    "summary": "Live task outputs as Server-Sent Events",
    "description": (
        "The WebSocket feeds over plain HTTP (`text/event-stream`), for clients and proxies that cannot use "
        "WebSockets: the organization's summary feed, or with `flow_execution_id` one flow execution's feed. "
        "Each event is `id: <cursor>`, `event: <message type>`, `data: <JSON>`; `: heartbeat` comments at least "
        "every 15 s. Resume with `Last-Event-ID` or `after`: everything written since, `event: resumed`, then "
        "live (`event: resync_required` beyond 10,000 outputs). The response never ends by itself; revoked "
        "credentials end it. See docs/live-updates.md, \"Without WebSockets: Server-Sent Events\"."
    ),
    "tags": ["task-outputs"],
    "security": [{"apiKey": []}, {"cookieAuth": []}],
    "parameters": [
        _query("flow_execution_id", {"type": "string", "format": "uuid"},
               "One flow execution's feed (full records); no other filter may be given with it."),
        _query("task_name", {"type": "string"}, "Summary feed: any of these task names (comma-separated)."),
        _query("status", {"type": "string"}, "Summary feed: any of these statuses (comma-separated)."),
        {**_query("tag", {"type": "array", "items": {"type": "string"}}, "Summary feed: all of these tags."),
         "style": "form", "explode": True},
        _query("organization_id", {"type": "string", "format": "uuid"},
               "Summary feed: one of the caller's organizations (default: all of them)."),
        _query("after", {"type": "string"}, "A cursor to resume from (`Last-Event-ID` wins if both are sent)."),
        {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "The last event id the client saw: what EventSource sends when it reconnects."},
    ],
}  # fmt: skip


def event_stream(result, generator, request, public):
    """Postprocessing hook: the event stream, which Channels serves beside Django (superai_flow.routing)."""
    errors = {
        status: {
            "description": ERRORS[status].description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
        }
        for status in (400, 401, 403, 404, 500, 503)
    }
    errors[400]["description"] = (
        "An unknown parameter, a status that is not one, or a cursor this service did not make."
    )
    errors[404]["description"] = "No such flow execution for this caller, or it is deleted (`not_found`)."
    ok = {"description": "The stream of events.", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    result["paths"]["/api/v1/task-outputs/stream/"] = {"get": {**_STREAM, "responses": {"200": ok, **errors}}}
    return result
