"""Project-level pages: the front page and the health check."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from superai_flow.notifications import get_dispatcher


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when the service can reach its database, 503 otherwise (for load balancers and scripts).

    Also reports this process's notification counters: queued, sent, retried and dropped.
    """
    notifications = get_dispatcher().snapshot()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        body = {"status": "unavailable", "database": "unreachable", "notifications": notifications}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "database": "ok", "notifications": notifications})
