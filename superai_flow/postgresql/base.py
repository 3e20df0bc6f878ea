"""Django's PostgreSQL backend, with a pool that checks a connection before lending it without a round trip.

psycopg_pool's own check (what CONN_HEALTH_CHECKS turns on) runs a query on every borrow: one round
trip per request, for a connection that is almost always fine. An idle connection has nothing to
read: when the server restarts or ends the session, it sends a termination notice and closes the
socket, which makes the socket readable. So a connection whose socket is quiet is used at once; one
with something to read gets the real check, and if it died it goes back to the pool, which discards
it, and the next one is tried. A database restart costs the requests in flight, never later ones.

A request waits for a connection at most what is left of DB_POOL_TIMEOUT since it arrived (the
server's handler sets REQUEST_ARRIVED; time queued for a worker thread counts), and while the database
cannot be reached it fails fast: after one borrow timed out, borrows wait FAIL_FAST_SECONDS until one
succeeds again. Otherwise a request queued behind others that each waited the whole timeout would
wait it again: under load, 503s took twice DB_POOL_TIMEOUT where the contract allows it plus one second.
"""

from __future__ import annotations

import select
import time
from contextvars import ContextVar

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout

FAIL_FAST_SECONDS = 0.25
# When the request being served arrived (time.monotonic()); None outside requests.
REQUEST_ARRIVED: ContextVar[float | None] = ContextVar("request_arrived", default=None)


def has_something_to_read(connection: psycopg.Connection) -> bool:
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        if not isinstance(pool, BorrowWithinBudget):
            pool.__class__ = BorrowWithinBudget  # the pool Django built, with the waits described above
        for _ in range(pool.max_size + 1):
            connection = super().get_new_connection(conn_params)
            if not has_something_to_read(connection):
                return connection
            try:
                connection.execute("")
                return connection
            except psycopg.Error:
                pool.putconn(connection)  # a broken connection: the pool closes it and opens another
        return super().get_new_connection(conn_params)


class BorrowWithinBudget(ConnectionPool):
    """psycopg_pool's pool, waiting for a connection as the module docstring says."""

    failing = False

    def getconn(self, timeout: float | None = None):
        if timeout is None:
            timeout = self.timeout
            arrived = REQUEST_ARRIVED.get()
            if arrived is not None:
                timeout -= time.monotonic() - arrived
            if self.failing:
                timeout = min(timeout, FAIL_FAST_SECONDS)
            timeout = max(timeout, FAIL_FAST_SECONDS)
        try:
            connection = super().getconn(timeout)
        except PoolTimeout:
            self.failing = True
            raise
        self.failing = False
        return connection
