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
