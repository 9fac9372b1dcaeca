"""Settings every part shares: the limits on what one request may carry and make wait.

Each component owns its own settings (``fnscope.processors.retention``, ``fnscope.alerts.config``); the
top-level ``fnscope.app.settings.Settings`` composes them with these and reads fnscope.yaml and FNSCOPE_*.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# Lambda's default concurrency quota per account and region: the limit of functions without reserved concurrency.
DEFAULT_ACCOUNT_CONCURRENCY_LIMIT = 1000
# Lambda's public x86 prices, USD: what a GB-second and an invocation cost.
DEFAULT_PRICE_PER_GB_SECOND = 0.0000166667
DEFAULT_PRICE_PER_REQUEST = 0.0000002


class Limits(BaseModel):
    """What one request may carry, and how much the embedded store may hold waiting."""

    max_body_bytes: int = Field(16 * 1024 * 1024, description="a request body as sent, before decompression")
    max_decompressed_bytes: int = Field(64 * 1024 * 1024, description="a request body after decompression")
    max_records_per_request: int = Field(100_000, description="records in one request")
    max_log_bytes: int = Field(
        2 * 1024**3, description="embedded: local log bytes not yet stored (store down or behind) before answering 429"
    )
    max_field_chars: int = Field(
        262_144, description="longer strings (a log line, a raw record) are truncated, with a marker"
    )
    rate_limit: str = Field(
        "", description='per token, e.g. "100/second" or "5000/minute" (the `limits` notation); "" = none'
    )
