"""URL routes: the REST API under /api/v1/, pages, sign-in, admin, the health endpoints and /metrics."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.negotiation import DefaultContentNegotiation

from superai_flow import metrics, views

api_v1 = [
    path("", include("flow_executions.api.urls")),
    path("", include("task_outputs.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.health, name="health"),
    path("readyz", views.ready, name="ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("task_outputs.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # The schema is YAML or JSON (`?format=json`, or Accept), so it negotiates like DRF does by default.
    path(
        "api/schema/",
        SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation),
        name="openapi-schema",
    ),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
]

handler400 = "superai_flow.errors.handler400"
handler403 = "superai_flow.errors.handler403"
handler404 = "superai_flow.errors.handler404"
handler500 = "superai_flow.errors.handler500"
