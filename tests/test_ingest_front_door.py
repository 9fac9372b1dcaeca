"""The ingest endpoints as the front door serves them (plain ASGI in front of FastAPI): what work may run on the
event loop, and answers that read as FastAPI's did."""

from __future__ import annotations

import asyncio
import base64
import gzip
import threading
from concurrent.futures import Future

import httpx
import orjson

from fnscope.app.server import build_app
from fnscope.app.settings import Settings
from fnscope.events import Event
from fnscope.telemetry import pipeline_metrics
from tests.test_distributed import telemetry_batch


class WhereSubmitted:
    """A sink that notes whether each submit ran on the event loop's thread (here the main thread)."""

    def __init__(self, never_blocks: bool) -> None:
        self.submit_never_blocks = never_blocks
        self.on_loop: list[bool] = []

    def submit(self, events: list[Event]) -> Future[None]:
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def ready(self) -> bool:
        return True

    def stored(self, timeout_s: float) -> bool:
        return True


def _post(sink: WhereSubmitted, path: str, body: bytes, tokens: dict[str, str] | None = None) -> httpx.Response:
    app = build_app(Settings(tokens=tokens or {}), pipeline_metrics(), sink=sink)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fnscope.test") as client:
            return await client.post(path, content=body, params={"function": "orders"})

    return asyncio.run(send())


def test_an_extensions_batch_is_handled_on_the_loop_and_an_expensive_body_never_is() -> None:
    sink = WhereSubmitted(never_blocks=True)
    assert _post(sink, "/ingest/telemetry", telemetry_batch("orders", 0, 10)).json()["accepted"] == 20
    assert sink.on_loop == [True]
    # 16 KB of tiny records: thousands of dead letters, a third of a second of work, so off the loop
    many = b"[" + b",".join([b"1"] * 8000) + b"]"
    assert len(many) < 16 * 1024 and _post(sink, "/ingest/telemetry", many).status_code == 400
    # a Firehose record can inflate to the decompression limit: always off the loop, however small the body
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/orders",
        "logStream": "2026/12/07/[$LATEST]abc",
        "logEvents": [{"id": "1", "timestamp": 1796600000000, "message": "hello"}],
    }
    record = base64.b64encode(gzip.compress(orjson.dumps(payload))).decode()
    firehose = orjson.dumps({"requestId": "r", "timestamp": 0, "records": [{"data": record}]})
    assert _post(sink, "/ingest/firehose", firehose).status_code == 200
    assert sink.on_loop == [True, False, False]


def test_a_sink_that_may_block_is_never_called_on_the_loop() -> None:
    sink = WhereSubmitted(never_blocks=False)  # Kafka's: it may wait for the broker's metadata
    assert _post(sink, "/ingest/telemetry", telemetry_batch("orders", 0, 2)).status_code == 200
    assert sink.on_loop == [False]


def test_errors_answer_as_fastapi_did() -> None:
    sink = WhereSubmitted(never_blocks=True)
    denied = _post(sink, "/ingest/telemetry", b"[]", tokens={"secret": "acme:telemetry"})
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert denied.json() == {"detail": "missing or invalid token"}
    bad = _post(sink, "/ingest/telemetry", b"{not json")
    assert bad.status_code == 400 and "telemetry body is not JSON" in bad.json()["detail"]
