"""The HTTP side of the ASGI application: Django's handler, with each request's sync work in one thread hop.

Django's own ASGI handler runs the middleware in async mode. With sync middleware and sync views
(ours, DRF's, admin's), every request then crosses between the event loop and a thread several times
(each sync middleware, the view, DRF's rendering, `response.close()`), and each request gets a new
thread of its own (asgiref's ThreadSensitiveContext). Profiled under load, those crossings were 18% of
the server's CPU. Here the middleware chain is loaded in sync mode, as under WSGI, and everything
between reading the body and sending the response (URL resolution, middleware, the view, rendering,
closing the response, which returns the database connection to the pool) runs in one call on a
fixed pool of worker threads. docs/performance.md has the figures.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi, base
from django.http import FileResponse
from django.urls import get_resolver, set_script_prefix

from superai_flow.notifications import held_for_the_loop
from superai_flow.postgresql.base import REQUEST_ARRIVED

logger = logging.getLogger(__name__)


class ASGIHandler(asgi.ASGIHandler):
    """Serves HTTP like Django's ASGIHandler, running the sync part of a request in one worker-thread call."""

    def __init__(self):
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(max_workers=settings.SERVER_THREADS, thread_name_prefix="request")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        REQUEST_ARRIVED.set(time.monotonic())  # the database's wait counts from here (postgresql/base.py)
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        try:
            with held_for_the_loop():  # live messages join the dispatcher's queue here, not from the thread
                # The worker thread runs in a copy of this context (request ids and other context variables).
                work = functools.partial(contextvars.copy_context().run, self.respond, scope, body_file)
                response = await loop.run_in_executor(self.executor, work)
            await self.send_response(response, send)
        finally:
            body_file.close()
        if response.streaming:
            # Streamed bodies are consumed by send_response; their resources are released after it.
            await loop.run_in_executor(self.executor, response.close)

    def respond(self, scope, body_file):
        """The whole sync side of one request: a finished response (closed unless it streams)."""
        set_script_prefix(asgi.get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            response.close()  # sends request_finished: the database connection goes back to the pool
        return response


def pass_request_bodies_through() -> None:
    """Let daphne hand every request body to Django as it came, without Twisted parsing it first.

    Twisted's Request parses the Content-Type of every POST with the `email` package (4-7% of the
    server's CPU per create, docs/performance.md) to decode form bodies into `request.args`, which
    daphne never reads: it passes the raw body to the application. It also answered a malformed
    multipart body with its own bare 400 before the application saw it. `parsePOSTFormSubmission` is
    Twisted's switch for this; daphne builds its requests from `daphne.http_protocol.WebRequest`.
    """
    from daphne import http_protocol

    if getattr(http_protocol.WebRequest, "passes_bodies_through", False):
        return

    class WebRequest(http_protocol.WebRequest):
        passes_bodies_through = True

        def __init__(self, *args, **kwargs):
            super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    http_protocol.WebRequest = WebRequest


def skip_twisted_access_log() -> None:
    """Stop Twisted from formatting an access-log line for every HTTP request that daphne then throws away.

    daphne writes its own access log (`Server.log_action`); Twisted's `HTTPFactory.log` also formats a
    combined-log line per request and writes it to Twisted's log, which daphne routes to nowhere unless
    run with `-v 2` or more. Profiled under load, that line was 4-5% of the event loop's CPU. daphne's
    access log is unchanged.
    """
    from daphne import http_protocol

    # daphne's server module holds the class itself (imported before the application is), so the
    # method is replaced on it rather than the class in the module.
    http_protocol.HTTPFactory.log = _no_twisted_access_log


def _no_twisted_access_log(factory, request) -> None:
    pass


def drain_before_shutdown() -> None:
    """On SIGTERM, let daphne finish the HTTP requests in flight before it cancels what is left.

    daphne cancels every application instance as soon as shutdown begins, so a request being served
    when a process manager stops the server was cut off. Now the process first stops accepting
    connections (the others sharing the socket take them), then waits up to SERVER_DRAIN_SECONDS for
    its HTTP requests to be answered, and only then lets daphne close the rest (WebSockets, which
    clients resume elsewhere). daphne registers `Server.kill_all_applications` for shutdown when it
    starts, after importing the application; wrapping it here takes effect for that registration.
    """
    from daphne import http_protocol
    from daphne import server as daphne_server
    from twisted.internet import defer, reactor, tcp

    cancel_the_rest = daphne_server.Server.kill_all_applications
    if getattr(cancel_the_rest, "drains", False):
        return

    def kill_all_applications(self):
        for reader in reactor.getReaders():
            if isinstance(reader, tcp.Port):
                reader.stopListening()
        deadline = time.monotonic() + settings.SERVER_DRAIN_SECONDS

        def answering() -> int:
            return sum(
                1
                for protocol, details in list(self.connections.items())
                if isinstance(protocol, http_protocol.WebRequest)
                and not details.get("application_instance", _DONE).done()
            )

        async def drain() -> None:
            pending = answering()
            if pending:
                logger.info("Shutting down: finishing %d request(s) in flight", pending)
            while answering() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

        drained = defer.Deferred.fromFuture(asyncio.ensure_future(drain()))
        drained.addBoth(lambda _: cancel_the_rest(self))
        return drained

    kill_all_applications.drains = True
    daphne_server.Server.kill_all_applications = kill_all_applications


class _Done:
    @staticmethod
    def done() -> bool:
        return True


_DONE = _Done()


def settle_garbage_collector() -> None:
    """Keep the collector's full passes short: they scan every tracked object, and a server holds many.

    Under a steady load one process ran full collections of 60-81 ms every 2-2.5 s, stalling every
    request in flight. Everything loaded at start-up (Django, the apps, every view) lives as long as the
    process, so it is moved out of the collector's sight (`gc.freeze()`), and the youngest generation
    is collected less often (GC_THRESHOLD_0), since a request allocates thousands of objects that
    reference counting frees anyway. GC_FREEZE=0 turns both off. docs/performance.md has the figures.
    """
    if not settings.GC_FREEZE:
        return
    get_resolver().url_patterns  # noqa: B018 - imports every view now, so that it is frozen with the rest
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(settings.GC_THRESHOLD_0, middle, oldest)
