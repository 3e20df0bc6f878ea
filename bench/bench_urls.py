"""The project's URLs plus two trivial POST endpoints that answer 201 with a small JSON body and touch
no database: the baselines of bench/create_throughput.py (through the same middleware, same daphne).

- /bench/trivial/django: a plain Django view.
- /bench/trivial/drf: a DRF APIView without authentication, permissions or throttling; it does not
  parse the request body.
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from superai_flow.urls import handler400, handler403, handler404, handler500, urlpatterns

BODY = {"id": "00000000-0000-0000-0000-000000000000", "status": "created"}


@csrf_exempt
@require_POST
def trivial_django(request: HttpRequest) -> JsonResponse:
    return JsonResponse(BODY, status=201)


class TrivialDRF(APIView):
    authentication_classes = []
    permission_classes = []
    throttle_classes = []

    def post(self, request: Request) -> Response:
        return Response(BODY, status=201)


urlpatterns = [
    *urlpatterns,
    path("bench/trivial/django", trivial_django),
    path("bench/trivial/drf", csrf_exempt(TrivialDRF.as_view())),
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
