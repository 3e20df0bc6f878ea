"""URL routes: the REST API under /api/v1/, admin, the front page and a health check."""

from django.contrib import admin
from django.urls import include, path

from superai_flow import views

api_v1 = [
    path("", include("flow_executions.api.urls")),
    path("", include("task_outputs.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
]

handler400 = "superai_flow.errors.handler400"
handler403 = "superai_flow.errors.handler403"
handler404 = "superai_flow.errors.handler404"
handler500 = "superai_flow.errors.handler500"
