"""Routes of task outputs that Channels serves: the WebSocket feeds and the Server-Sent Events stream."""

from django.urls import path

from task_outputs.consumers import EventStreamConsumer, FlowExecutionFeedConsumer, SummaryFeedConsumer

websocket_urlpatterns = [
    path("ws/flow-executions/<uuid:pk>/", FlowExecutionFeedConsumer.as_asgi()),
    path("ws/task-outputs/summaries/", SummaryFeedConsumer.as_asgi()),
]

# With and without a trailing slash, as every API route (superai_flow.api).
_stream = EventStreamConsumer.as_asgi()
event_stream_paths = {"/api/v1/task-outputs/stream": _stream, "/api/v1/task-outputs/stream/": _stream}
