"""Counting ingest requests and their rejections by format, as plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request of the app (searches included) in extra tasks and
streams, about 0.8 ms each here; this passes everything but ingest POSTs straight through.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fnscope.telemetry import PipelineMetrics

INGEST_FORMATS = frozenset({"telemetry", "cloudwatch", "firehose", "apigateway", "cloudtrail", "otlp"})


def ingest_format(method: str, path: str) -> str | None:
    """The format label of an ingest request, None for any other request."""
    if method != "POST" or not (path.startswith("/ingest/") or path == "/v1/logs"):
        return None
    fmt = "otlp" if path == "/v1/logs" else path.removeprefix("/ingest/")
    return fmt if fmt in INGEST_FORMATS else "unknown"  # a label from the URL must not grow without bound


class IngestRequestCounter:
    def __init__(self, app: ASGIApp, metrics: PipelineMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fmt = ingest_format(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if fmt is None:
            await self.app(scope, receive, send)
            return
        self.metrics.received_requests.add(1, {"format": fmt})

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.metrics.rejected.add(1, {"format": fmt, "status": str(message["status"])})
            await send(message)

        await self.app(scope, receive, counting_send)
