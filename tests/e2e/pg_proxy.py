"""A PostgreSQL wire-protocol proxy that counts the round trips its clients make, for end-to-end tests.

Point a server's DATABASE_URL at `PgProxy.port` instead of PostgreSQL's and every byte is forwarded
unchanged to the real server, while the frontend (client -> server) stream is parsed into messages
(https://www.postgresql.org/docs/current/protocol-message-formats.html):

- the first message of a connection is untyped (int32 length, int32 code, payload): a StartupMessage,
  a CancelRequest, or an SSLRequest / GSSENCRequest, which the proxy declines itself with b"N" (it
  cannot read encrypted traffic; libpq then carries on in plain text, as with sslmode=prefer). Clients
  that demand encryption fail, which is why servers are pointed here with `sslmode=disable`;
- every later message is typed: 1 byte of type, int32 length (counting itself), payload.

A ROUND TRIP is a wait of the client for the server. The messages after which a client waits are 'Q'
(simple Query) and 'S' (Sync, which ends an extended-protocol query: Parse/Bind/Describe/Execute/Sync),
plus two it sends only to get answers: 'H' (Flush, how psycopg's pipeline mode fetches results before
or right after its Sync) and 'F' (FunctionCall). Several of those sent back to back, with nothing from
the server forwarded in between, are one wait: the client cannot have waited for an answer it had not
been sent (psycopg ends a pipeline with Sync + Flush, one wait). So the count never misses a wait; it
may count one too many only when an answer happens to slip in between two messages sent back to back.
Opening a connection (startup, authentication) is not counted: a pool pays for it once, not per request.

For diagnosis each round trip keeps the SQL it carried: the text of 'Q', or of the 'P' (Parse)
messages since the previous round trip on that connection (a Bind of a statement prepared earlier
shows that statement's text). `messages` counts the frontend messages by type.

The proxy runs an asyncio loop in a daemon thread of the test process; counters can be read and reset
from the test while servers talk through it.
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
# Messages after which a client waits for the server (see the module docstring).
WAITING_TYPES = frozenset(b"QSHF")
# Far above any real message; a bigger length means the stream is not what this parser thinks it is.
MAX_MESSAGE = 1 << 30


@dataclass
class RoundTrip:
    """One wait for the server: on which proxied connection, ended by which message(s), carrying which SQL."""

    connection: int
    kinds: str  # "Q", "S", or e.g. "SH" for messages sent back to back
    statements: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        sql = " | ".join(_shorten(statement) for statement in self.statements)
        return f"[conn {self.connection}, {self.kinds}] {sql or '(no SQL text)'}"


@dataclass
class _Connection:
    number: int
    answered: bool = False  # server bytes were forwarded to the client since its last waiting message
    current: RoundTrip | None = None


class PgProxy:
    """A counting TCP proxy on a free loopback port to PostgreSQL (a host, or a Unix socket directory
    like libpq's host=/var/run/postgresql); use as a context manager."""

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5432, host: str = "127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port: int | None = None
        self._lock = threading.Lock()
        self._round_trips: list[RoundTrip] = []
        self._messages: Counter[str] = Counter()
        self._connections = 0
        self._last_message = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # --- what the test reads ------------------------------------------------------------------------

    @property
    def round_trips(self) -> list[RoundTrip]:
        """Every round trip since the last reset, in the order the proxy saw them."""
        with self._lock:
            return [replace(trip, statements=list(trip.statements)) for trip in self._round_trips]

    @property
    def messages(self) -> Counter[str]:
        """How many frontend messages of each type since the last reset ('Q', 'P', 'B', 'S', ...)."""
        with self._lock:
            return Counter(self._messages)

    @property
    def connections(self) -> int:
        """How many client connections the proxy has accepted, ever (not reset)."""
        with self._lock:
            return self._connections

    def reset(self) -> None:
        with self._lock:
            self._round_trips.clear()
            self._messages.clear()

    def wait_until_quiet(self, quiet: float = 0.2, timeout: float = 10) -> None:
        """Until no client has sent a message for `quiet` seconds: a server may still be talking to the
        database (e.g. returning a connection to its pool) after its HTTP response has gone out."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                idle = time.monotonic() - self._last_message
            if idle >= quiet:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the database traffic did not stop within {timeout} s")
            time.sleep(quiet - idle)

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> PgProxy:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._accept, self.host, 0))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="pg-proxy", daemon=True)
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            # Hanging up (rather than cancelling the tasks) lets every connection's task end normally.
            for writer in list(self._writers):
                writer.close()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the proxy ----------------------------------------------------------------------------------

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        with self._lock:
            self._connections += 1
            state = _Connection(self._connections)
        try:
            host, port = self.upstream
            if host.startswith("/"):  # a socket directory, as in libpq's host=/var/run/postgresql
                server_reader, server_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
            else:
                server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        self._writers |= {client_writer, server_writer}
        upstream = asyncio.create_task(self._backend(state, server_reader, client_writer))
        self._tasks.add(upstream)
        try:
            await self._frontend(state, client_reader, client_writer, server_writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a connection closed mid-message: the database (or the client) hung up
        finally:
            server_writer.close()
            client_writer.close()
            await upstream
            self._writers -= {client_writer, server_writer}
            self._tasks.discard(upstream)
            self._tasks.discard(task)

    async def _backend(self, state: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Backend -> client, unparsed. When the database hangs up, so does the proxy towards the client."""
        try:
            while data := await reader.read(65536):
                writer.write(data)
                state.answered = True  # same event loop as _frontend: no lock needed
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _frontend(
        self,
        state: _Connection,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        server: asyncio.StreamWriter,
    ) -> None:
        """Client -> backend, message by message, counting as it goes."""
        while True:  # the untyped first message(s)
            header = await reader.readexactly(8)
            length, code = struct.unpack("!ii", header)
            if not 8 <= length <= MAX_MESSAGE:
                raise OSError(f"not a PostgreSQL startup packet (length {length})")
            rest = await reader.readexactly(length - 8)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                client.write(b"N")  # "not here": the client goes on unencrypted, or gives up
                await client.drain()
                continue
            server.write(header + rest)
            await server.drain()
            if code == CANCEL_REQUEST:
                return
            break

        prepared: dict[str, str] = {}  # statement name -> SQL, for Binds of statements prepared earlier
        pending: list[str] = []  # SQL since the last round trip on this connection
        parsed: set[str] = set()  # names of the statements in `pending` that were parsed in this batch
        while True:
            header = await reader.read(1)
            if not header:
                return
            body_length = struct.unpack("!i", await reader.readexactly(4))[0]
            if not 4 <= body_length <= MAX_MESSAGE:
                raise OSError(f"not a PostgreSQL message (length {body_length})")
            payload = await reader.readexactly(body_length - 4)
            kind = header.decode("latin-1")
            if kind == "Q":
                pending.append(_cstring(payload, 0)[0])
            elif kind == "P":
                name, end = _cstring(payload, 0)
                sql = _cstring(payload, end)[0]
                if name:
                    prepared[name] = sql
                    parsed.add(name)
                pending.append(sql)
            elif kind == "B":
                statement = _cstring(payload, _cstring(payload, 0)[1])[0]
                if statement and statement not in parsed:
                    pending.append(prepared.get(statement, f"(prepared statement {statement!r})"))
            with self._lock:
                self._messages[kind] += 1
                self._last_message = time.monotonic()
                if header[0] in WAITING_TYPES:
                    if state.answered or state.current is None:
                        state.current = RoundTrip(state.number, kind, pending)
                        self._round_trips.append(state.current)
                    else:  # sent right after the previous one, before any answer: the same wait
                        state.current.kinds += kind
                        state.current.statements.extend(pending)
                    state.answered = False
            if header[0] in WAITING_TYPES:
                pending, parsed = [], set()
            server.write(header + struct.pack("!i", body_length) + payload)
            await server.drain()


def _shorten(sql: str, width: int = 300) -> str:
    """One line of `sql` for a failure message: long select lists elided (the table and the WHERE
    clause tell which query it is), then cut at `width`."""
    sql = " ".join(sql.split())
    if not sql:
        return "(empty query)"
    sql = re.sub(r"^SELECT (.{80,}?) FROM ", "SELECT … FROM ", sql)
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def _cstring(data: bytes, start: int) -> tuple[str, int]:
    """The NUL-terminated string at `start` of a message payload, and where the next field begins."""
    end = data.index(b"\0", start)
    return data[start:end].decode("utf-8", "replace"), end + 1
