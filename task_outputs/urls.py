"""Pages of execution history."""

from django.urls import path

from task_outputs import views

urlpatterns = [
    path("executions/", views.executions, name="executions"),
    path("executions/<uuid:pk>/", views.execution_detail, name="execution-detail"),
    path("executions/<uuid:pk>/timeline/", views.execution_timeline, name="execution-timeline"),
    path("executions/outputs/<uuid:pk>/card/", views.output_card, name="output-card"),
    path("executions/outputs/<uuid:pk>/output.json", views.output_json, name="output-json"),
]
