"""The HTTP receivers: one endpoint per wire format, all sharing one ingest path.

Body within limits → parse (good events + dead letters) → hand everything to the sink → wait until it is
durable → answer. A 2xx is only sent once the sink confirmed (the local log's append committed, or Kafka acked with acks=all);
``?wait=stored`` also waits until the processor stored it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from fnscope.auth import TokenAuth
from fnscope.collector.body import read_body
from fnscope.collector.field_limits import truncate_fields
from fnscope.collector.formats import apigateway, cloudtrail, cloudwatch, firehose, otlp, telemetry
from fnscope.collector.formats.base import Parsed
from fnscope.config import Limits
from fnscope.decoding.budget import Budget, RequestTooLarge, limited
from fnscope.decoding.errors import UnusableBody
from fnscope.decoding.jsontext import compact_json
from fnscope.events import Event, dead_letter
from fnscope.sink import IngestContext, Sink, plain_refusal
from fnscope.telemetry import PipelineMetrics

log = logging.getLogger("fnscope.ingest")
DURABLE_TIMEOUT_S = 30.0
RETRY_AFTER_S = "2"
# A small Telemetry API batch, the extensions' format, is parsed on the event loop, and handed to a sink that never
# blocks: a worker thread and back costs two thread wake-ups under the GIL, which at hundreds of small requests a
# second cost more than the parsing and delayed every other request's answer. What keeps the loop's stall small is
# the number of records, not bytes: 32 KiB of ``[1,1,...]`` is 16,000 dead letters (a third of a second), so a body
# with more than INLINE_MAX_COMMAS commas (which bounds its records) goes to a thread; an extension's batch of about
# ten records has a hundred or so. The other parsers may inflate compressed data found inside a body (a Firehose
# record, a gzipped CloudWatch, access-log or OTLP body) or query the store (CloudTrail files): always a thread.
INLINE_PARSE_BYTES = 16 * 1024
INLINE_MAX_COMMAS = 256
INLINE_SOURCES = frozenset({"telemetry"})


Parser = Callable[[bytes, IngestContext], Parsed]


@dataclass
class StoreFirst:
    """A mapping the sink does itself, tried before the parser: the embedded store reads CloudTrail log files
    in ClickHouse (processors/cloudtrail_bulk.py), which a backfill of years of files needs for speed.

    ``store`` stores what it can and returns (events stored, what the parser must still read); once it stored
    something, the rest goes to ``rest_parser``, whose bad records are dead letters rather than a 400.
    """

    store: Callable[[bytes, IngestContext], tuple[int, bytes]]
    rest_parser: Parser


@dataclass
class _Handed:
    """What parsing one body and handing it to the sink gave: the parse result, and the sink's future for it."""

    parsed: Parsed
    future: Future[None] | None
    error: HTTPException | None = None  # answer with this once the dead letter for the body is durable


class Ingest:
    """The shared ingest path; each endpoint only says which parser and how to answer.

    Everything CPU-bound for one request (parse, limits, truncation, handing to the sink) happens in one call: on the
    event loop for a small body, else in a single worker-thread call (each hop between the event loop and the thread
    pool costs a thread wake-up under the GIL, which at many concurrent senders was a visible share of the time).
    """

    def __init__(self, sink: Sink, limits: Limits, metrics: PipelineMetrics, saturated: tuple[type[Exception], ...]):
        self.sink = sink
        self.limits = limits
        self.metrics = metrics
        self.saturated = saturated

    async def __call__(
        self,
        request: Request,
        tenant: str,
        source: str,
        parser: Parser,
        store_first: StoreFirst | None = None,
        audit: bool = False,
    ) -> Parsed:
        started = time.perf_counter()
        if not self.sink.ready():
            # Known down (Kafka unreachable, store writer stopped): refuse before reading and parsing the body.
            raise HTTPException(503, "store unavailable, retry later", headers={"Retry-After": RETRY_AFTER_S})
        body = await read_body(request, self.limits.max_body_bytes, self.limits.max_decompressed_bytes)
        self.metrics.received_bytes.add(len(body), {"format": source})
        params = dict(request.query_params)
        ctx = IngestContext(tenant=tenant, params=params, audit=audit)
        if self._inline(source, body) and store_first is None:
            handed = self._parse_and_submit(body, ctx, source, parser, None)
        else:
            handed = await run_in_threadpool(self._parse_and_submit, body, ctx, source, parser, store_first)
        if handed.future is not None:
            await self._durable(source, handed.future, handed.parsed)
        if params.get("wait") == "stored":
            # durable already; the sender also wants to read its writes back (a script, an import, a test)
            handed.parsed.meta["stored"] = await run_in_threadpool(self.sink.stored, DURABLE_TIMEOUT_S)
        if handed.error is not None:
            raise handed.error
        parsed = handed.parsed
        self.metrics.accepted.add(len(parsed.events) + parsed.stored, {"format": source})
        self.metrics.request_seconds.record(time.perf_counter() - started, {"format": source})
        if not parsed.events and not parsed.stored and parsed.dead:
            reasons = sorted({d.reason for d in parsed.dead})[:5]
            raise HTTPException(400, {"accepted": 0, "rejected": len(parsed.dead), "errors": reasons})
        return parsed

    def _inline(self, source: str, body: bytes) -> bool:
        """Whether this body is parsed and handed to the sink on the event loop (see INLINE_PARSE_BYTES)."""
        return (
            source in INLINE_SOURCES
            and len(body) <= INLINE_PARSE_BYTES
            and body.count(b",") <= INLINE_MAX_COMMAS
            and getattr(self.sink, "submit_never_blocks", False)
        )

    def _parse_and_submit(
        self, body: bytes, ctx: IngestContext, source: str, parser: Parser, store_first: StoreFirst | None
    ) -> _Handed:
        """Parse, apply the limits, hand to the sink (in a worker thread, or on the loop for a small Telemetry
        batch). Raises HTTPException to answer now."""
        stored = 0
        if store_first is not None:
            try:
                stored, body = store_first.store(body, ctx)
            except Exception as exc:
                log.warning("store-side mapping failed: %r", exc)
                raise HTTPException(
                    503, "store unavailable, retry later", headers={"Retry-After": RETRY_AFTER_S}
                ) from exc
            if stored:
                parser = store_first.rest_parser
        budget = Budget(self.limits.max_records_per_request, self.limits.max_decompressed_bytes)
        try:
            with limited(budget):
                parsed = parser(body, ctx) if body or not stored else Parsed()
        except RequestTooLarge as exc:
            raise HTTPException(413, f"{exc} (at most {self.limits.max_records_per_request} records)") from None
        except UnusableBody as exc:
            return self._reject_body(source, body, ctx.tenant, str(exc))
        except Exception as exc:  # a parser bug must not lose the body: keep it and say so
            reason = f"parser error: {type(exc).__name__}: {exc}"
            return self._reject_body(source, body, ctx.tenant, reason)
        if len(parsed.events) + len(parsed.dead) > self.limits.max_records_per_request:
            raise HTTPException(413, f"more than {self.limits.max_records_per_request} records in one request")
        for event in parsed.events:
            event.tenant = ctx.tenant
        for dead in parsed.dead:
            dead.tenant = ctx.tenant
        truncate_fields(parsed.events, self.limits.max_field_chars)
        parsed.stored = stored
        return _Handed(parsed, self._submit([*parsed.events, *parsed.dead]))

    def _reject_body(self, source: str, body: bytes, tenant: str, reason: str) -> _Handed:
        """A body with nothing usable: kept as a dead letter, answered 400 with the same reason."""
        letter = dead_letter(source, reason, body, tenant=tenant)
        return _Handed(Parsed(dead=[letter]), self._submit([letter]), HTTPException(400, reason))

    def _submit(self, events: list[Event]) -> Future[None] | None:
        if not events:
            return None
        try:
            return self.sink.submit(events)
        except Exception as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: Exception) -> HTTPException:
        """What a sender hears when the sink did not take its events: 429 when busy, else 503."""
        if isinstance(exc, self.saturated):
            log.warning("ingest refused, sink busy: %s", exc)
            return HTTPException(429, "store busy, retry later", headers={"Retry-After": RETRY_AFTER_S})
        log.warning("ingest refused, sink unavailable: %r", exc)
        return HTTPException(503, plain_refusal(exc), headers={"Retry-After": RETRY_AFTER_S})

    async def _durable(self, source: str, future: Future[None], parsed: Parsed) -> None:
        """Wait until the events are durable."""
        try:
            async with asyncio.timeout(DURABLE_TIMEOUT_S):
                await asyncio.wrap_future(future)  # on timeout it is cancelled: the sink then tells nobody
        except Exception as exc:
            raise self._refusal(exc) from exc
        if parsed.dead:
            self.metrics.dead_lettered.add(len(parsed.dead), {"format": source})


def counts(parsed: Parsed) -> dict[str, Any]:
    answer: dict[str, Any] = {"accepted": len(parsed.events) + parsed.stored, "rejected": len(parsed.dead)}
    if parsed.dead:
        answer["errors"] = sorted({d.reason for d in parsed.dead})[:5]
    if "stored" in parsed.meta:  # asked with ?wait=stored: whether the events are in the store, not only durable
        answer["stored"] = parsed.meta["stored"]
    return answer


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class IngestRoute:
    path: str
    source: str
    summary: str
    handler: Handler


def ingest_routes(ingest: Ingest, auth: TokenAuth, cloudtrail_first: StoreFirst | None = None) -> list[IngestRoute]:
    """Every ingest endpoint: its path, what it takes, and its handler (a plain Starlette request → response).

    The handlers are served by ``collector.front_door`` without FastAPI's routing, and declared in FastAPI
    (``ingest_router``) only so the OpenAPI document lists them.
    """

    def json_endpoint(
        path: str, source: str, parser: Parser, summary: str, first: StoreFirst | None = None
    ) -> IngestRoute:
        scope = "audit" if source == "cloudtrail" else "telemetry"

        async def endpoint(request: Request) -> Response:
            tenant = auth.check(request, scope)
            parsed = await ingest(request, tenant, source, parser, first, auth.allows(request, "audit"))
            return Response(orjson.dumps(counts(parsed)), media_type="application/json")

        return IngestRoute(path, source, summary, endpoint)

    async def firehose_endpoint(request: Request) -> Response:
        # Firehose expects {requestId, timestamp[, errorMessage]} in every answer, errors included.
        request_id = request.headers.get("x-amz-firehose-request-id", "")
        try:
            tenant = auth.check(request, "telemetry")
            parsed = await ingest(request, tenant, "firehose", firehose.parse, audit=auth.allows(request, "audit"))
        except HTTPException as exc:
            detail = exc.detail if isinstance(exc.detail, str) else compact_json(exc.detail)
            return JSONResponse(
                {"requestId": request_id, "timestamp": _now_ms(), "errorMessage": detail},
                status_code=exc.status_code,
                headers=exc.headers,
            )
        return JSONResponse({"requestId": parsed.meta.get("request_id") or request_id, "timestamp": _now_ms()})

    async def otlp_endpoint(request: Request) -> Response:
        tenant = auth.check(request, "telemetry")
        content_type = request.headers.get("content-type", "application/x-protobuf").split(";")[0].strip()
        parsed = await ingest(request, tenant, "otlp", lambda body, ctx: otlp.parse(body, ctx, content_type))
        answer = ExportLogsServiceResponse()
        rejected = len(parsed.dead) + int(parsed.meta.get("rejected_log_records", 0))
        if rejected:
            answer.partial_success.rejected_log_records = rejected
            answer.partial_success.error_message = "; ".join(sorted({d.reason for d in parsed.dead})[:3])
        if content_type == "application/json":
            return Response(MessageToJson(answer), media_type="application/json")
        return Response(answer.SerializeToString(), media_type="application/x-protobuf")

    return [
        json_endpoint("/ingest/telemetry", "telemetry", telemetry.parse, "Lambda Telemetry API / Logs API batch"),
        json_endpoint("/ingest/cloudwatch", "cloudwatch", cloudwatch.parse, "CloudWatch Logs subscription payload"),
        json_endpoint("/ingest/apigateway", "apigateway", apigateway.parse, "API Gateway access logs (JSON lines)"),
        json_endpoint(
            "/ingest/cloudtrail",
            "cloudtrail",
            cloudtrail.parse,
            "CloudTrail log file, array or NDJSON",
            cloudtrail_first,
        ),
        IngestRoute("/ingest/firehose", "firehose", "Firehose HTTP-endpoint delivery", firehose_endpoint),
        IngestRoute("/v1/logs", "otlp", "OTLP/HTTP logs (protobuf or JSON)", otlp_endpoint),
    ]


def ingest_router(routes: list[IngestRoute]) -> APIRouter:
    """The ingest endpoints as FastAPI knows them: for the OpenAPI document (the front door serves them)."""
    router = APIRouter(tags=["ingest"])
    for route in routes:
        name = f"ingest_{route.source}"
        router.add_api_route(route.path, route.handler, methods=["POST"], summary=route.summary, name=name)
    return router


def _now_ms() -> int:
    return int(time.time() * 1000)
