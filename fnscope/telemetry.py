"""The pipeline's own metrics through the OpenTelemetry SDK: at /metrics (Prometheus text) and, when
``otlp_metrics_endpoint`` is set, pushed over OTLP/HTTP as well.

One meter provider per process (the Prometheus reader registers globally), set up by ``configure_telemetry``
before the first ``pipeline_metrics()`` (otherwise with the Prometheus reader only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from prometheus_client import REGISTRY, generate_latest

from fnscope.events import Signal

_lock = threading.Lock()
_provider: MeterProvider | None = None
_metrics: PipelineMetrics | None = None

SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 100_000, 500_000)


@dataclass
class Gauge:
    """Latest values by attribute set, read by an observable gauge when a reader collects."""

    values: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def set(self, value: float, attributes: dict[str, str] | None = None) -> None:
        self.values[tuple(sorted((attributes or {}).items()))] = value

    def replace(self, values: dict[tuple[tuple[str, str], ...], float]) -> None:
        self.values = values

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(attrs)) for attrs, value in list(self.values.items())]


class Tally:
    """A counter kept in plain Python, read by an observable counter when a reader collects. An ingest request adds
    to several counters; the SDK's own ``Counter.add`` hashes its attributes and runs its aggregation under locks on
    every call (together about a tenth of a small request's CPU, measured with cProfile), where this is a dict
    update."""

    def __init__(self) -> None:
        self._totals: dict[tuple[tuple[str, str], ...], float] = {}
        self._lock = threading.Lock()

    def add(self, amount: float, attributes: dict[str, str]) -> None:
        key = tuple(sorted(attributes.items()))
        with self._lock:
            self._totals[key] = self._totals.get(key, 0) + amount

    def observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            totals = list(self._totals.items())
        return [Observation(value, dict(attrs)) for attrs, value in totals]


@dataclass
class PipelineMetrics:
    received_requests: Tally  # counter {format}
    received_bytes: Tally  # counter {format}
    accepted: Tally  # counter {format}: events handed to the store or Kafka and acknowledged
    rejected: Tally  # counter {format, status}: requests refused with a 4xx/5xx
    dead_lettered: Tally  # counter {format}: records kept in the dead-letter store
    stored: Tally  # counter {signal}: events written to ClickHouse
    request_seconds: Any  # histogram {format}
    insert_seconds: Any  # histogram {role}
    batch_events: Any  # histogram {role}: events per ClickHouse insert batch
    kafka_lag: Gauge  # {topic, partition}: messages not yet read by this processor
    log_bytes: Gauge  # embedded: bytes in the local log not yet stored

    def record_stored(self, written: dict[Signal, int]) -> None:
        for signal, count in written.items():
            self.stored.add(count, {"signal": signal.value})

    def record_insert(self, role: str, events: int, seconds: float) -> None:
        self.insert_seconds.record(seconds, {"role": role})
        self.batch_events.record(events, {"role": role})


def configure_telemetry(otlp_endpoint: str = "", otlp_interval_s: float = 15.0) -> None:
    """Create the process's meter provider: Prometheus always, OTLP/HTTP push when an endpoint is given."""
    global _provider
    with _lock:
        if _provider is not None:
            return
        readers: list[MetricReader] = [PrometheusMetricReader()]
        if otlp_endpoint:
            # Imported here: the OTLP exporter is only needed by those who push.
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=otlp_endpoint),
                    export_interval_millis=otlp_interval_s * 1000,
                )
            )
        _provider = MeterProvider(metric_readers=readers)


def shutdown_telemetry() -> None:
    """Flush the OTLP exporter (if any) on a clean stop."""
    if _provider is not None:
        _provider.shutdown()


def pipeline_metrics() -> PipelineMetrics:
    global _metrics
    if _provider is None:
        configure_telemetry()
    assert _provider is not None
    with _lock:
        if _metrics is not None:
            return _metrics
        meter = _provider.get_meter("fnscope")
        lag, pending = Gauge(), Gauge()
        meter.create_observable_gauge(
            "fnscope_kafka_lag_messages", [lag.observe], description="processor: messages in Kafka not yet read"
        )
        meter.create_observable_gauge(
            "fnscope_log_bytes", [pending.observe], unit="By", description="embedded: local log bytes not yet stored"
        )

        def tally(name: str, description: str, unit: str = "") -> Tally:
            counter = Tally()
            meter.create_observable_counter(name, [counter.observe], unit=unit, description=description)
            return counter

        _metrics = PipelineMetrics(
            received_requests=tally("fnscope_received_requests", "ingest requests"),
            received_bytes=tally("fnscope_received_bytes", "request bytes", unit="By"),
            accepted=tally("fnscope_accepted_events", "events accepted, by format"),
            rejected=tally("fnscope_rejected_requests", "requests refused, by status"),
            dead_lettered=tally("fnscope_dead_lettered_records", "records dead-lettered"),
            stored=tally("fnscope_stored_events", "events written to ClickHouse"),
            request_seconds=meter.create_histogram(
                "fnscope_ingest_seconds",
                unit="s",
                description="ingest request latency, durable answer included",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            insert_seconds=meter.create_histogram(
                "fnscope_insert_seconds",
                unit="s",
                description="ClickHouse insert latency per batch",
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            ),
            batch_events=meter.create_histogram(
                "fnscope_insert_batch_events",
                description="events per ClickHouse insert batch",
                explicit_bucket_boundaries_advisory=BATCH_BUCKETS,
            ),
            kafka_lag=lag,
            log_bytes=pending,
        )
        return _metrics


def prometheus_text() -> bytes:
    return generate_latest(REGISTRY)


def serve_metrics(
    port: int,
    host: str = "127.0.0.1",
    live: Callable[[], bool] = lambda: True,
    ready: Callable[[], bool] = lambda: True,
) -> ThreadingHTTPServer:
    """For roles without an HTTP API (the processor), on their own port: /metrics, and /healthz (the role's loop is
    running) and /readyz (it is doing its work: the store takes its writes) for orchestrators' health checks."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, prometheus_text(), "text/plain; version=0.0.4")
            elif path in ("/healthz", "/readyz"):
                ok = live() if path == "/healthz" else live() and ready()
                self._answer(200 if ok else 503, b'{"ok": true}' if ok else b'{"ok": false}', "application/json")
            else:
                self._answer(404, b"not found", "text/plain")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:  # scrapes and probes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
