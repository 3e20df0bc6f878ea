"""ASGI entry point (`daphne superai_flow.asgi:application`): Django for HTTP, Channels for WebSockets and the
event stream."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "superai_flow.settings")
# Django must be set up before anything imports models (handlers, routing, consumers).
django.setup(set_prefix=False)

from superai_flow.handlers import (  # noqa: E402
    ASGIHandler,
    drain_before_shutdown,
    pass_request_bodies_through,
    settle_garbage_collector,
    skip_twisted_access_log,
)

django_asgi_app = ASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from superai_flow.notifications import AttachDispatcher  # noqa: E402
from superai_flow.routing import HTTPRouter, websocket_urlpatterns  # noqa: E402

application = AttachDispatcher(
    ProtocolTypeRouter(
        {
            "http": HTTPRouter(django_asgi_app),
            # Consumers check credentials and, for cookie sessions, the Origin themselves (Bearer
            # clients may send no Origin), so no blanket origin validator wraps them.
            "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
        }
    )
)

pass_request_bodies_through()
skip_twisted_access_log()
drain_before_shutdown()
settle_garbage_collector()
