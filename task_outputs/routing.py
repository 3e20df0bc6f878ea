"""WebSocket routes of task outputs."""

from django.urls import path

from task_outputs.consumers import FlowExecutionFeedConsumer, SummaryFeedConsumer

websocket_urlpatterns = [
    path("ws/flow-executions/<uuid:pk>/", FlowExecutionFeedConsumer.as_asgi()),
    path("ws/task-outputs/summaries/", SummaryFeedConsumer.as_asgi()),
]
