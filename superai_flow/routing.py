"""Routes that Channels serves, gathered for the ASGI application: the WebSocket feeds, and the one HTTP
path that is not Django's (the Server-Sent Events stream, a long-lived consumer like a WebSocket's)."""

from channels.auth import AuthMiddlewareStack

from task_outputs.routing import event_stream_paths
from task_outputs.routing import websocket_urlpatterns as task_output_routes

websocket_urlpatterns = [*task_output_routes]


class HTTPRouter:
    """Event-stream paths to their consumers (with the session user, as WebSockets get it), everything else to
    Django: one dictionary look-up per request instead of Channels' URLRouter and its regular expressions."""

    def __init__(self, django_app) -> None:
        self.django_app = django_app
        self.streams = {path: AuthMiddlewareStack(app) for path, app in event_stream_paths.items()}

    async def __call__(self, scope, receive, send):
        app = self.streams.get(scope["path"], self.django_app)
        return await app(scope, receive, send)
