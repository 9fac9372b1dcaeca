"""The HTTP server's defences against slow and greedy clients, on top of uvicorn's own.

uvicorn closes idle keep-alive connections and, with ``limit_concurrency``, answers 503 past a number of open
connections and tasks; it has no deadline for a request's headers, so a client that opens a connection and never
finishes its headers (slowloris) would hold it for ever. ``HeaderDeadline`` closes such a connection. A slow body
is bounded by the receivers (``collector/body.py``).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0  # from connection (or the end of the previous request) to the end of the headers
MAX_CONNECTIONS = 512  # open connections and requests in progress; past this, 503 at once
KEEP_ALIVE_S = 15.0  # an idle keep-alive connection is closed after this (Lambda extensions post every second)


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def server_options() -> dict[str, Any]:
    """What every role passes to ``uvicorn.run``."""
    return {
        "http": HeaderDeadline,
        "limit_concurrency": MAX_CONNECTIONS,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }


def check_port_free(host: str, port: int) -> None:
    """Fail in one line, before anything starts or is printed, when the address is taken (another fnscope?)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"cannot listen on {host}:{port}: {exc.strerror.lower() if exc.strerror else exc} "
                "(another fnscope running? choose another with --port)"
            ) from None
