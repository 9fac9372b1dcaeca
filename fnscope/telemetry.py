"""The pipeline's own metrics, through the OpenTelemetry SDK, exposed at /metrics in Prometheus text format."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, generate_latest

from fnscope.events import Signal

_provider: MeterProvider | None = None


@dataclass
class PipelineMetrics:
    received: object
    accepted: object
    rejected: object
    stored: object
    request_seconds: object

    def record_stored(self, written: dict[Signal, int]) -> None:
        for signal, count in written.items():
            self.stored.add(count, {"signal": signal.value})


def pipeline_metrics() -> PipelineMetrics:
    """One meter provider per process (the Prometheus reader registers globally)."""
    global _provider
    if _provider is None:
        _provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    meter = _provider.get_meter("fnscope")
    return PipelineMetrics(
        received=meter.create_counter("fnscope_received_bytes", unit="By", description="request bytes received"),
        accepted=meter.create_counter("fnscope_accepted_events", description="events accepted, by format"),
        rejected=meter.create_counter("fnscope_rejected_events", description="records dead-lettered, by format"),
        stored=meter.create_counter("fnscope_stored_events", description="events written to ClickHouse"),
        request_seconds=meter.create_histogram("fnscope_ingest_seconds", unit="s", description="ingest latency"),
    )


def prometheus_text() -> bytes:
    return generate_latest(REGISTRY)
