"""Tokens and tenants: which tenant a request acts for, from its token, within its rate limit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import HTTPException, Request

from fnscope.ratelimit import RateLimiter

DEFAULT_TENANT = "default"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, tokens: dict[str, str]) -> None:
    """Open access is only for a loopback bind: anything reachable from outside needs tokens."""
    if not tokens and not is_loopback(host):
        raise SystemExit(
            f"refusing to listen on {host} without tokens: set FNSCOPE_TOKENS=token:tenant[,...] or bind to 127.0.0.1"
        )


def fingerprint(token: str) -> str:
    """What may appear in logs, metrics and rate-limit keys instead of the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class TokenAuth:
    """FastAPI dependency: the caller's tenant. Bearer token, Firehose access key or OTLP's Authorization.

    A valid token over its rate limit gets a 429 with Retry-After; without tokens configured the limit applies
    to all callers together.
    """

    def __init__(self, tokens: dict[str, str], limiter: RateLimiter | None = None) -> None:
        self.tokens = tokens
        self.limiter = limiter or RateLimiter("")

    def __call__(self, request: Request) -> str:
        tenant, key = self._identify(request)
        wait = self.limiter.retry_after(key)
        if wait is not None:
            raise HTTPException(
                429, f"rate limit of {self.limiter.item} per token exceeded", headers={"Retry-After": str(wait)}
            )
        return tenant

    async def tenant(self, request: Request) -> str:
        """The same check as a FastAPI dependency (``Depends(auth.tenant)``), run on the event loop.

        FastAPI runs a plain-function dependency in its threadpool: two thread wake-ups per request for a few
        microseconds of token check and rate-limit count, which never block.
        """
        return self(request)

    def _identify(self, request: Request) -> tuple[str, str]:
        if not self.tokens:
            return DEFAULT_TENANT, "open"
        token = _presented_token(request)
        for known, tenant in self.tokens.items():
            if token and hmac.compare_digest(token.encode(), known.encode()):
                return tenant, fingerprint(known)
        raise HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})


def _presented_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-amz-firehose-access-key", "") or request.headers.get("x-fnscope-token", "")
