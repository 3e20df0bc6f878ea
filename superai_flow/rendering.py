"""The API speaks JSON only, whatever the client's Accept header asks for."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer


class JSONOnlyNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        media_type = request.content_type.split(";")[0].strip().lower()
        return next((parser for parser in parsers if parser.media_type == media_type), None)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SafeJSONRenderer(JSONRenderer):
    """UTF-8 JSON; falls back to \\u escapes when a string (an echoed bad input) cannot be encoded."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            self.ensure_ascii = True
            try:
                return super().render(data, accepted_media_type, renderer_context)
            finally:
                del self.ensure_ascii
