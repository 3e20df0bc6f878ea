"""The Server-Sent Events stream end to end: a real daphne process, real HTTP clients reading it as curl and
EventSource do (the last `id:` seen is what a reconnection sends as Last-Event-ID)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time

import httpx
import pytest
from channels.db import database_sync_to_async
from django.db import connection

from superai_flow.organizations.models import APIKey
from superai_flow.organizations.services import api_key_revoke
from tests.e2e.servers import DaphneServer
from tests.e2e.test_live import headers, new_flow, post_output, start_writers
from tests.helpers import EventStreamReader

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

STREAM = "/api/v1/task-outputs/stream"


async def read_for(response: httpx.Response, reader: EventStreamReader, seconds: float | None):
    """The events of an open stream for `seconds` (None: until it ends), as blocks with their data parsed."""
    chunks = response.aiter_text()
    deadline = None if seconds is None else asyncio.get_running_loop().time() + seconds
    while True:
        timeout = None if deadline is None else deadline - asyncio.get_running_loop().time()
        if timeout is not None and timeout <= 0:
            return
        try:
            text = await asyncio.wait_for(anext(chunks), timeout)
        except (TimeoutError, StopAsyncIteration):
            return
        for block in reader.feed(text):
            if "event" in block:
                yield {**block, "data": json.loads(block["data"])}


async def test_curl_sees_outputs_as_they_are_created(daphne_server, tenant):
    flow_id = new_flow(daphne_server, tenant)
    async with (
        httpx.AsyncClient(base_url=daphne_server.url, timeout=10) as client,
        client.stream("GET", STREAM, headers=headers(tenant[1])) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        created = await asyncio.to_thread(post_output, daphne_server, tenant, flow_id, "extract")
        events = read_for(response, EventStreamReader(), 10)
        event = await anext(events)

    assert event["event"] == "task_output.summary" and event["id"]
    assert event["data"]["id"] == created["id"] and event["data"]["flow_execution_id"] == flow_id


async def test_a_client_that_keeps_reconnecting_with_last_event_id_misses_nothing_under_concurrent_writers(
    daphne_server, tenant
):
    flow_id = new_flow(daphne_server, tenant)
    listing = httpx.get(
        f"{daphne_server.url}/api/v1/task-outputs", params={"flow_execution_id": flow_id}, headers=headers(tenant[1])
    )
    reader = EventStreamReader()
    reader.last_id = listing.headers["X-Live-Cursor"]
    reconnected_enough = threading.Event()
    created, threads = start_writers(daphne_server, tenant, flow_id, reconnected_enough)
    received: set[str] = set()
    reconnects = 0

    async def session(client: httpx.AsyncClient, seconds: float | None) -> None:
        """One connection, resuming from the last id seen, read for `seconds` (None: until `resumed`)."""
        request_headers = {**headers(tenant[1]), "Last-Event-ID": reader.last_id}
        async with client.stream("GET", STREAM, params={"flow_execution_id": flow_id}, headers=request_headers) as r:
            assert r.status_code == 200
            async for event in read_for(r, reader, seconds if seconds is not None else 30):
                if event["event"].startswith("task_output."):
                    received.add(event["data"]["id"])
                if event["event"] == "resumed" and seconds is None:
                    return

    async with httpx.AsyncClient(base_url=daphne_server.url, timeout=30) as client:
        while any(thread.is_alive() for thread in threads):
            await session(client, random.uniform(0.2, 0.8))
            reconnects += 1
            if reconnects >= 3:
                reconnected_enough.set()
        await session(client, None)  # a last resume after the writers finished

    assert len(created) >= 200
    assert reconnects >= 3, "the writers finished before the reader reconnected: the test did not test anything"
    assert set(created) <= received, f"missed {len(set(created) - received)} outputs"


async def test_a_key_revoked_while_its_stream_is_open_ends_it_within_5_seconds(daphne_server, tenant):
    async with (
        httpx.AsyncClient(base_url=daphne_server.url, timeout=10) as client,
        client.stream("GET", STREAM, headers=headers(tenant[1])) as response,
    ):
        assert response.status_code == 200
        await database_sync_to_async(lambda: api_key_revoke(api_key=APIKey.objects.get(organization_id=tenant[0])))()
        revoked = time.monotonic()
        body = ""
        async for text in response.aiter_text():  # until the server ends the response
            body += text
        ended = time.monotonic() - revoked
        while True:  # a reconnection: refused once the server's API-key cache (5 s at most) has let go
            async with client.stream("GET", STREAM, headers=headers(tenant[1])) as again:
                if again.status_code != 200 or time.monotonic() - revoked > 6:
                    refusal = json.loads(await again.aread())
                    break
            await asyncio.sleep(0.2)
        refused = time.monotonic() - revoked

    assert ended < 5
    assert body.endswith(": closed: the credentials were revoked\n\n")
    assert again.status_code == 401 and refusal["error"]["code"] == "not_authenticated"
    assert refused < 6


async def test_idle_streams_hold_no_thread_and_no_database_connection_each(tenant):
    def threads(server: DaphneServer) -> int:
        return len(os.listdir(f"/proc/{server.process.pid}/task"))

    def database_connections() -> int:
        if connection.vendor != "postgresql":
            return 0  # SQLite: no server to hold connections
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
            return cursor.fetchone()[0]

    async def opened(client: httpx.AsyncClient):
        response = await client.send(client.build_request("GET", STREAM, headers=headers(tenant[1])), stream=True)
        assert response.status_code == 200
        chunks = response.aiter_text()
        assert "id: " in await anext(chunks)  # its first cursor: the query it needs is done
        return response, chunks

    async def first_event(response: httpx.Response, chunks) -> dict:
        reader = EventStreamReader()
        try:
            async with asyncio.timeout(5):
                while not (events := [block for block in reader.feed(await anext(chunks)) if "event" in block]):
                    pass
        finally:
            await response.aclose()
        return json.loads(events[0]["data"])

    with DaphneServer() as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10, limits=httpx.Limits()) as client:
            streams = [await opened(client)]
            before = threads(server), await database_sync_to_async(database_connections)()
            streams += [await opened(client) for _ in range(40)]
            await asyncio.sleep(0.5)
            after = threads(server), await database_sync_to_async(database_connections)()
            flow_id = await asyncio.to_thread(new_flow, server, tenant)
            created = await asyncio.to_thread(post_output, server, tenant, flow_id, "extract")
            delivered = [(await first_event(response, chunks))["id"] for response, chunks in streams]

    assert after[0] - before[0] <= 2, f"{after[0] - before[0]} more threads for 40 more streams"
    assert after[1] - before[1] <= 1, f"{after[1] - before[1]} more database connections for 40 more streams"
    assert delivered == [created["id"]] * 41
