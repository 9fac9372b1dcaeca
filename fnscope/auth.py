"""Tokens, tenants and scopes: which tenant a request acts for, whether its token may do what it asks, within its
rate limit.

A token carries scopes, so that the token every function's environment holds (the Telemetry extension's) can only
send telemetry: ``telemetry`` (function telemetry, logs, API logs, OTLP), ``audit`` (CloudTrail ingest and
import), ``read`` (queries, the console), ``admin`` (test notifications, dead letters). Settings name them after
the tenant: ``FNSCOPE_TOKENS="tokA:acme:telemetry,tokB:acme:audit,tokC:acme:read+admin"``. A token named without
scopes (``tokA:acme``, the older form) has all of them, and a warning says so at start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from fnscope.ratelimit import RateLimiter

DEFAULT_TENANT = "default"
SCOPES = ("telemetry", "audit", "read", "admin")
log = logging.getLogger("fnscope.auth")


@dataclass(frozen=True)
class Grant:
    """What one token may do: act for ``tenant`` within ``scopes``."""

    tenant: str
    scopes: frozenset[str]
    all_scopes_by_default: bool = False


def parse_grant(value: str) -> Grant:
    """``tenant`` or ``tenant:scope+scope`` (the part of a FNSCOPE_TOKENS entry after the token)."""
    tenant, _, named = value.partition(":")
    tenant = tenant.strip() or DEFAULT_TENANT
    if not named.strip():
        return Grant(tenant, frozenset(SCOPES), all_scopes_by_default=True)
    scopes = frozenset(scope.strip() for scope in named.replace(",", "+").split("+") if scope.strip())
    if unknown := sorted(scopes - set(SCOPES)):
        raise ValueError(f"unknown token scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
    return Grant(tenant, scopes)


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
    """FastAPI dependencies: the caller's tenant, for a route that needs a scope (``Depends(auth.read)``).
    The token is a Bearer token, Firehose's access key or OTLP's Authorization.

    A token unknown or absent is a 401; a valid token without the route's scope is a 403. A valid token over its
    rate limit gets a 429 with Retry-After; without tokens configured every caller may do everything, within the
    limit applied to all of them together.
    """

    def __init__(self, tokens: dict[str, str], limiter: RateLimiter | None = None) -> None:
        self.grants = {token: parse_grant(value) for token, value in tokens.items()}
        self.limiter = limiter or RateLimiter("")
        legacy = sum(grant.all_scopes_by_default for grant in self.grants.values())
        if legacy:
            log.warning(
                "%d token(s) name no scopes and may do everything (send telemetry and audit events, read, "
                "administer): give each its scopes, e.g. FNSCOPE_TOKENS=tok:tenant:telemetry",
                legacy,
            )
        self.telemetry = self.scoped("telemetry")
        self.audit = self.scoped("audit")
        self.read = self.scoped("read")
        self.admin = self.scoped("admin")

    @property
    def tokens_required(self) -> bool:
        """Tokens are configured: tenants are told apart (without them every caller is the default tenant)."""
        return bool(self.grants)

    def scoped(self, scope: str) -> Callable[[Request], Awaitable[str]]:
        """A dependency that answers the caller's tenant if its token has ``scope``.

        Async, so FastAPI runs it on the event loop: a plain function would cost two thread wake-ups per request
        for a few microseconds of token check and rate-limit count, which never block.
        """

        async def tenant(request: Request) -> str:
            return self.check(request, scope)

        tenant.__name__ = f"{scope}_tenant"
        return tenant

    def who(self, request: Request) -> str:
        """Who made a request, for records such as a legal hold: the token's fingerprint, never the token."""
        token = _presented_token(request)
        return f"token {fingerprint(token)}" if token and self.grants else "open access (no tokens)"

    def check(self, request: Request, scope: str) -> str:
        tenant, key, scopes = self._identify(request)
        if scope not in scopes:
            raise HTTPException(403, f"this token may not {_MAY[scope]}: it needs the {scope!r} scope")
        wait = self.limiter.retry_after(key)
        if wait is not None:
            raise HTTPException(
                429, f"rate limit of {self.limiter.item} per token exceeded", headers={"Retry-After": str(wait)}
            )
        return tenant

    def allows(self, request: Request, scope: str) -> bool:
        """Whether the request's token also has ``scope`` (asked after ``check`` let the request in)."""
        try:
            return scope in self._identify(request)[2]
        except HTTPException:
            return False

    def _identify(self, request: Request) -> tuple[str, str, frozenset[str]]:
        if not self.grants:
            return DEFAULT_TENANT, "open", frozenset(SCOPES)
        token = _presented_token(request)
        for known, grant in self.grants.items():
            if token and hmac.compare_digest(token.encode(), known.encode()):
                return grant.tenant, fingerprint(known), grant.scopes
        raise HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})


_MAY = {
    "telemetry": "send function telemetry, logs or API logs",
    "audit": "send audit events",
    "read": "read",
    "admin": "administer",
}


def _presented_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-amz-firehose-access-key", "") or request.headers.get("x-fnscope-token", "")
