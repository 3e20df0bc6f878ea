"""Django's PostgreSQL backend, with a pool that checks a connection before lending it without a round trip.

psycopg_pool's own check (what CONN_HEALTH_CHECKS turns on) runs a query on every borrow: one round
trip per request, for a connection that is almost always fine. An idle connection has nothing to
read: when the server restarts or ends the session, it sends a termination notice and closes the
socket, which makes the socket readable. So a connection whose socket is quiet is used at once; one
with something to read gets the real check, and if it died it goes back to the pool, which discards
it, and the next one is tried. A database restart costs the requests in flight, never later ones.

While the database cannot be reached, requests fail fast: after a borrow times out (DB_POOL_TIMEOUT),
the pool's timeout drops to FAIL_FAST_SECONDS until a borrow succeeds again. Otherwise every request
would wait the whole timeout, and those queued behind them for a worker thread would wait it again:
under load, 503s took twice DB_POOL_TIMEOUT where the contract allows it plus one second.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import PoolTimeout

FAIL_FAST_SECONDS = 0.25


def has_something_to_read(connection: psycopg.Connection) -> bool:
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        configured = self.settings_dict["OPTIONS"]["pool"].get("timeout", pool.timeout)
        try:
            connection = self._checked_connection(pool, conn_params)
        except PoolTimeout:
            pool.timeout = min(FAIL_FAST_SECONDS, configured)  # down: the next requests need not wait long
            raise
        pool.timeout = configured
        return connection

    def _checked_connection(self, pool, conn_params):
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
