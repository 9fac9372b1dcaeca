"""Tokens and tenants: which tenant a request acts for, from its token."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import HTTPException, Request

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


class TokenAuth:
    """FastAPI dependency: the caller's tenant. Bearer token, Firehose access key or OTLP's Authorization."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def __call__(self, request: Request) -> str:
        if not self.tokens:
            return DEFAULT_TENANT
        token = _presented_token(request)
        for known, tenant in self.tokens.items():
            if token and hmac.compare_digest(token.encode(), known.encode()):
                return tenant
        raise HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})


def _presented_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-amz-firehose-access-key", "") or request.headers.get("x-fnscope-token", "")
