"""Plumbing every API viewset shares: reading the JSON body, answering a create."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import get_script_prefix, reverse
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter
from rest_framework.serializers import Serializer

from superai_flow.exceptions import BadRequest


def api_router() -> SimpleRouter:
    """Routes that answer with and without a trailing slash, never redirecting."""
    router = SimpleRouter()
    router.trailing_slash = "/?"  # a regex fragment; DRF's constructor only offers "/" or ""
    return router


def validated_body(request: Request, serializer_class: type[Serializer]) -> dict[str, Any]:
    """The request's JSON object, validated: 400 when there is no object, 422 for any field problem."""
    data = request.data
    if request.stream is None:
        raise BadRequest("The request body is empty; send a JSON object.")
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    accepted = getattr(serializer_class, "accepted", None)
    fast = accepted(data) if accepted is not None else None  # StrictSerializer's fast path for valid bodies
    if fast is not None:
        return fast
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def create_response(data: dict[str, Any], *, created: bool, location: str) -> Response:
    """201 for a new record, 200 for an idempotent replay of one; `Location` names it either way."""
    code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return Response(data, status=code, headers={"Location": location})


def detail_url(name: str, pk: uuid.UUID) -> str:
    """`reverse(name, kwargs={"pk": pk})` for the `Location` of a create, without resolving the URL
    again for every create (2% of one's CPU): the path is made once per URL name and script prefix."""
    key = (name, get_script_prefix())
    template = _detail_templates.get(key)
    if template is None:
        template = _detail_templates[key] = reverse(name, kwargs={"pk": _PLACEHOLDER})
    return template.replace(str(_PLACEHOLDER), str(pk))


_PLACEHOLDER = uuid.UUID(int=0)
_detail_templates: dict[tuple[str, str], str] = {}
