"""Per-token request rate limits, with the wait a refused caller should observe (for Retry-After)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter


class RateLimiter:
    """``"100/second"``-style limits per key (a token's fingerprint); the sliding window smooths bursts at edges."""

    def __init__(self, spec: str) -> None:
        self.item: RateLimitItem | None = parse(spec) if spec.strip() else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def retry_after(self, key: str) -> int | None:
        """Count one request for key: None when allowed, else the seconds to wait before retrying."""
        if self.item is None or self._limiter.hit(self.item, key):
            return None
        reset_at = self._limiter.get_window_stats(self.item, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))
