"""The OpenTelemetry SDK's own OTLP/HTTP log exporter sending to a running `fnscope up`, then searched."""

from __future__ import annotations

import httpx
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.conftest import Process, all_stored


def test_sdk_exporter_logs_are_stored_and_searchable(embedded: tuple[str, Process]) -> None:
    url, _ = embedded
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", timeout=10)
    provider = LoggerProvider(resource=Resource.create({"faas.name": "checkout", "cloud.region": "eu-west-1"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("checkout.handler")
    for n in range(25):
        logger.emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body=f"inventory low for sku{n}",
            attributes={"faas.invocation_id": f"inv-{n}", "sku": f"sku{n}"},
        )
    assert provider.force_flush(10_000)
    provider.shutdown()
    all_stored(url)

    found = httpx.get(f"{url}/api/search", params={"q": "inventory", "function": "checkout", "limit": 100}).json()
    rows = found["results"]
    assert len(rows) == 25
    assert {row["request_id"] for row in rows} == {f"inv-{n}" for n in range(25)}
    assert all(row["level"] == "WARN" and row["fields"]["sku"] in row["message"] for row in rows)
