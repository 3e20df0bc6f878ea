"""Per-key rate limits: a sliding-window counter in the shared cache (Redis when REDIS_URL is set).

DRF's SimpleRateThrottle keeps every request's timestamp of the window in one cache entry, read,
unpickled, rewritten and pickled again on each request: at the default 6,000 a minute that list holds
thousands of entries, and checking it nearly doubled a create's CPU (docs/performance.md). Here each
key has one counter per window (current and previous); a request counts in the current one, and is
allowed while `previous * (share of the window still to run) + current` stays within the limit, the
usual sliding-window estimate. With Redis that is one round trip (INCR, EXPIRE and GET in one
pipeline); without it the process's own cache does the same in memory.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from superai_flow.authentication import APIKeyUser

logger = logging.getLogger(__name__)

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def _redis() -> redis.Redis:
    """This process's Redis client for counters (thread-safe; its pool reconnects after outages)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    return _client


class APIKeyRateThrottle(SimpleRateThrottle):
    """API_RATE_LIMIT requests per API key (or signed-in user); 429 with Retry-After beyond it.

    When the cache cannot be reached the request goes through: a rate limit must not turn a Redis
    outage into an outage of the API.
    """

    scope = "api_key"

    def get_rate(self) -> str | None:
        return settings.API_RATE_LIMIT or None

    def get_cache_key(self, request, view) -> str | None:
        user = request.user
        if isinstance(user, APIKeyUser):
            return f"throttle:key:{user.api_key.pk}"
        if user.is_authenticated:
            return f"throttle:user:{user.pk}"
        return None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        current_key, previous_key = f"{key}:{window}", f"{key}:{window - 1}"
        try:
            current, previous = self._count(current_key, previous_key)
        except Exception as exc:
            logger.warning("Rate limit not checked, the cache is unavailable: %r", exc)
            return True
        elapsed = now / self.duration - window  # share of the current window gone by, 0 to 1
        if previous * (1 - elapsed) + current <= self.num_requests:
            return True
        self._uncount(current_key)  # a refused request does not use up the budget
        self._wait = self._seconds_until_allowed(previous, current - 1, elapsed)
        return False

    def wait(self) -> float:
        return self._wait

    def _count(self, current_key: str, previous_key: str) -> tuple[int, int]:
        """Count this request in the current window; (current count, previous window's count)."""
        if settings.REDIS_URL:  # the keys as the cache names them, so that they share its prefix
            pipeline = _redis().pipeline(transaction=False)
            pipeline.incr(cache.make_key(current_key))
            pipeline.expire(cache.make_key(current_key), 2 * self.duration)
            pipeline.get(cache.make_key(previous_key))
            current, _, previous = pipeline.execute()
            return current, int(previous or 0)
        cache.add(current_key, 0, 2 * self.duration)
        return cache.incr(current_key), cache.get(previous_key, 0)

    def _uncount(self, current_key: str) -> None:
        try:
            if settings.REDIS_URL:
                _redis().decr(cache.make_key(current_key))
            else:
                cache.decr(current_key)
        except Exception as exc:
            logger.warning("Could not uncount a refused request: %r", exc)

    def _seconds_until_allowed(self, previous: int, current: int, elapsed: float) -> float:
        """When one more request would fit, at the earliest: later in this window or in the next one."""
        limit, duration = self.num_requests, self.duration
        options = []
        room = limit - current - 1
        if room >= 0 and previous > 0:
            options.append(max(0.0, (1 - room / previous) - elapsed) * duration)
        if current > 0:
            options.append((1 - elapsed) * duration + max(0.0, 1 - (limit - 1) / current) * duration)
        return max(1.0, math.ceil(min(options, default=(1 - elapsed) * duration)))
