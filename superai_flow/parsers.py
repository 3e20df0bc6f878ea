"""The API's only body parser: JSON, strictly, within the configured size."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from superai_flow.exceptions import PayloadTooLarge, UnprocessableEntity, detail


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class StrictJSONParser(BaseParser):
    """Parses UTF-8 JSON; NaN/Infinity are syntax errors, bodies over API_MAX_BODY_BYTES are 413."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        too_large = PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise too_large
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("The request body is not valid UTF-8.") from None
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise UnprocessableEntity(
                details=[
                    detail(None, "max_depth", f"JSON nesting is deeper than {settings.API_MAX_JSON_DEPTH} levels.")
                ]
            ) from None
        except ValueError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from None
