"""The ingest endpoints as the front door serves them (plain ASGI in front of FastAPI): what work may run on the
event loop, and answers that read as FastAPI's did."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import httpx
import orjson

from fnscope.events import Event
from tests.fixtures.formats import KeepingSink, firehose_body, gzipped, post, subscription_message
from tests.test_distributed import telemetry_batch


class WhereSubmitted(KeepingSink):
    """A sink that also notes whether each submit ran on the event loop's thread (here the main thread)."""

    def __init__(self, never_blocks: bool) -> None:
        super().__init__()
        self.submit_never_blocks = never_blocks
        self.on_loop: list[bool] = []

    def submit(self, events: list[Event]) -> Future[None]:
        self.on_loop.append(threading.current_thread() is threading.main_thread())
        return super().submit(events)


def _post(sink: WhereSubmitted, path: str, body: bytes, tokens: dict[str, str] | None = None) -> httpx.Response:
    return post(path, body, params={"function": "orders"}, sink=sink, tokens=tokens)[0]


def test_an_extensions_batch_is_handled_on_the_loop_and_an_expensive_body_never_is() -> None:
    sink = WhereSubmitted(never_blocks=True)
    assert _post(sink, "/ingest/telemetry", telemetry_batch("orders", 0, 10)).json()["accepted"] == 20
    assert sink.on_loop == [True]
    # 16 KB of tiny records: thousands of dead letters, a third of a second of work, so off the loop
    many = b"[" + b",".join([b"1"] * 8000) + b"]"
    assert len(many) < 16 * 1024 and _post(sink, "/ingest/telemetry", many).status_code == 400
    # a Firehose record can inflate to the decompression limit: always off the loop, however small the body
    payload = subscription_message("/aws/lambda/orders", "2026/12/07/[$LATEST]abc", [(1796600000000, "hello")])
    firehose = firehose_body("r", 0, [gzipped(orjson.dumps(payload))])
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
