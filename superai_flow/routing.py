"""WebSocket routes of every app, gathered for the ASGI application."""

from task_outputs.routing import websocket_urlpatterns as task_output_routes

websocket_urlpatterns = [*task_output_routes]
