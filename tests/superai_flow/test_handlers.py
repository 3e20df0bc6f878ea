"""The HTTP handler runs each request's sync work (middleware, view, SQL, clean-up) in one worker-thread call."""

from __future__ import annotations

import asyncio
import gc
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.layers import get_channel_layer
from django.core import signals
from django.db.backends.signals import connection_created

from superai_flow import notifications
from superai_flow.handlers import ASGIHandler, settle_garbage_collector, skip_twisted_access_log
from superai_flow.notifications import AttachDispatcher, Dispatcher


async def call(application, method: str, path: str, body: dict | None = None, key: str = "") -> tuple[int, dict]:
    payload = json.dumps(body).encode() if body is not None else b""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"authorization", f"Bearer {key}".encode()),
    ]
    scope = {"type": "http", "method": method, "path": path, "query_string": b"", "headers": headers,
             "server": ("testserver", 80), "client": ("127.0.0.1", 5000)}  # fmt: skip
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": payload})
    start = await communicator.receive_output(10)
    content = await communicator.receive_output(10)
    await communicator.wait(10)
    return start["status"], json.loads(content["body"])


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_request_does_all_its_sync_work_in_one_worker_thread(key_a, flow_a):
    application = ASGIHandler()
    seen: list[tuple[str, int]] = []

    def started(**kwargs):
        seen.append(("started", threading.get_ident()))

    def finished(**kwargs):
        seen.append(("finished", threading.get_ident()))

    def record_sql(execute, sql, params, many, context):
        seen.append(("sql", threading.get_ident()))
        return execute(sql, params, many, context)

    def wrap_sql(connection, **kwargs):  # connections are per thread: watch each worker's as it opens
        if record_sql not in connection.execute_wrappers:
            connection.execute_wrappers.append(record_sql)

    connection_created.connect(wrap_sql)
    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    body = {"organization_id": str(flow_a.organization_id), "flow_execution_id": str(flow_a.id),
            "task_name": "t", "summary": {"n": 1}}  # fmt: skip
    threads_per_request = []
    try:
        for _ in range(5):
            seen.clear()
            status, created = await call(application, "POST", "/api/v1/task-outputs", body, key_a)
            assert status == 201, created
            threads_per_request.append({thread for _, thread in seen})
            assert seen[0][0] == "started" and seen[-1][0] == "finished"
            assert sum(1 for event, _ in seen if event == "sql") >= 1
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
        connection_created.disconnect(wrap_sql)
        application.executor.shutdown()

    # Everything of one request ran on one thread, never the event loop's, and threads were reused
    # (Django's own handler starts a new thread for every request).
    assert all(len(threads) == 1 for threads in threads_per_request), threads_per_request
    assert threading.get_ident() not in set.union(*threads_per_request)
    assert len(set.union(*threads_per_request)) <= 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_creates_live_messages_join_the_queue_on_the_event_loop_without_a_wake_up(
    key_a, flow_a, settings, monkeypatch
):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    dispatcher = Dispatcher(max_queue=100, send_timeout=1, max_age=30, drain_seconds=0)
    monkeypatch.setattr(notifications, "_dispatcher", dispatcher)
    application = AttachDispatcher(ASGIHandler())
    loop = asyncio.get_running_loop()
    wake_ups = []  # what the worker thread scheduled on the loop for the dispatcher
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counted(callback, *args, **kwargs):
        if getattr(callback, "__self__", None) is dispatcher:
            wake_ups.append(callback.__name__)
        return call_soon_threadsafe(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(notifications.flow_group(flow_a.id), channel)
    body = {"organization_id": str(flow_a.organization_id), "flow_execution_id": str(flow_a.id),
            "task_name": "t", "summary": {"n": 1}}  # fmt: skip
    try:
        status, created = await call(application, "POST", "/api/v1/task-outputs", body, key_a)

        assert status == 201, created
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message["type"] == "task_output.created" and json.loads(message["text"])["data"]["id"] == created["id"]
        assert wake_ups == []
    finally:
        dispatcher.close()
        application.app.executor.shutdown()


def test_settling_the_collector_freezes_what_start_up_loaded(settings):
    settings.GC_FREEZE = True
    settings.GC_THRESHOLD_0 = 12_345
    before = gc.get_threshold()
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == 12_345
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_collector_can_be_left_as_it_is(settings):
    settings.GC_FREEZE = False
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()  # not 0 once anything imported superai_flow.asgi, which settles it

    settle_garbage_collector()

    assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == before


def test_twisted_writes_no_second_access_log_line_per_request():
    """daphne logs each request itself; Twisted's own combined-log line per request was formatted and discarded."""
    from daphne.http_protocol import HTTPFactory
    from twisted.logger import globalLogPublisher
    from twisted.web.http import Request
    from twisted.web.test.requesthelper import DummyChannel

    skip_twisted_access_log()
    factory = HTTPFactory(server=None)
    factory.startFactory()
    request = Request(DummyChannel())
    request.method, request.uri, request.clientproto, request.code = b"POST", b"/api/v1/task-outputs", b"HTTP/1.1", 201
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        factory.log(request)
    finally:
        globalLogPublisher.removeObserver(events.append)
        factory.stopFactory()

    assert events == []
