"""Per-token request rate limits, with the wait a refused caller should observe (for Retry-After)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter


class RateLimiter:
    """``"100/second"``-style limits per key (a token's fingerprint). By default a sliding window counter: two
    counters a key whatever the rate, but approximate at a window's edge (a burst across it can pass up to twice
    the limit). ``exact``: a moving window, which keeps a timestamp per allowed request, for small limits that
    must hold to the request (``5/minute``)."""

    def __init__(self, spec: str, exact: bool = False) -> None:
        self.item: RateLimitItem | None = parse(spec) if spec.strip() else None
        strategy = MovingWindowRateLimiter if exact else SlidingWindowCounterRateLimiter
        self._limiter = strategy(MemoryStorage())

    def retry_after(self, key: str) -> int | None:
        """Count one request for key: None when allowed, else the seconds to wait before retrying."""
        if self.item is None or self._limiter.hit(self.item, key):
            return None
        reset_at = self._limiter.get_window_stats(self.item, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))
