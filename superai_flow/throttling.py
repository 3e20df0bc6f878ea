"""Per-key rate limits: DRF throttling, counted in the shared cache (Redis when REDIS_URL is set)."""

from __future__ import annotations

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from superai_flow.authentication import APIKeyUser

logger = logging.getLogger(__name__)


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
        try:
            return super().allow_request(request, view)
        except Exception as exc:
            logger.warning("Rate limit not checked, the cache is unavailable: %r", exc)
            return True
