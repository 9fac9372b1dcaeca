"""The pipeline's own metrics: at /metrics, pushed over OTLP/HTTP, and /readyz, from real processes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from faults.load import cloudtrail_file
from tests.conftest import FNSCOPE, Process, all_stored, free_port, wait_http
from tests.test_distributed import start_collector


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


class OtlpReceiver(BaseHTTPRequestHandler):
    """A stand-in for an OpenTelemetry Collector's OTLP/HTTP metrics receiver: keeps what it is sent."""

    received: list[ExportMetricsServiceRequest] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def otlp_sums(requests: list[ExportMetricsServiceRequest]) -> dict[str, float]:
    """The latest cumulative value of each sum metric, over all its data points."""
    latest: dict[str, float] = {}
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.HasField("sum"):
                        latest[metric.name] = sum(p.as_double or p.as_int for p in metric.sum.data_points)
    return latest


def test_embedded_counts_at_metrics_and_over_otlp_and_is_ready(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Process(
        [*FNSCOPE, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        tmp_path / "up.log",
        {
            "FNSCOPE_OTLP_METRICS_ENDPOINT": f"http://127.0.0.1:{server.server_port}/v1/metrics",
            "FNSCOPE_OTLP_METRICS_INTERVAL_S": "0.5",
        },
    ).start()
    try:
        wait_http(f"{url}/healthz", proc=proc.proc)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"local_log": True, "store": True}

        good, _ = cloudtrail_file(120, 0, 0)
        records = json.loads(good)["Records"]
        partly_bad = json.dumps([*records[:3], {"eventName": "NoTime"}, 42]).encode()
        assert httpx.post(f"{url}/ingest/cloudtrail", content=good).status_code == 200
        assert httpx.post(f"{url}/ingest/cloudtrail", content=partly_bad).status_code == 200
        assert httpx.post(f"{url}/ingest/cloudtrail", content=b"not json at all").status_code == 400
        all_stored(url)

        m = scrape(f"{url}/metrics")
        assert value(m, "fnscope_received_requests_total", format="cloudtrail") == 3
        assert value(m, "fnscope_accepted_events_total", format="cloudtrail") == 123
        assert value(m, "fnscope_rejected_requests_total", format="cloudtrail", status="400") == 1
        assert value(m, "fnscope_dead_lettered_records_total", format="cloudtrail") == 3
        assert value(m, "fnscope_stored_events_total", signal="audit") == 123
        assert value(m, "fnscope_insert_seconds_count", role="embedded") >= 1
        assert value(m, "fnscope_insert_batch_events_sum", role="embedded") == 126  # 123 events + 3 dead letters
        assert value(m, "fnscope_ingest_seconds_count", format="cloudtrail") == 2  # the stored ones

        # a push may be cut between two counters of one request: wait until a push shows both final values
        expected = {"fnscope_accepted_events": 123, "fnscope_dead_lettered_records": 3}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(
            otlp_sums(OtlpReceiver.received).get(name) != count for name, count in expected.items()
        ):
            time.sleep(0.2)
        pushed = otlp_sums(OtlpReceiver.received)
        assert pushed.get("fnscope_accepted_events") == 123
        assert pushed.get("fnscope_dead_lettered_records") == 3
    finally:
        proc.stop()
        server.shutdown()


def test_processor_reports_lag_inserts_and_batches_on_its_metrics_port(broker: str, tmp_path: Path) -> None:
    url, collector = start_collector(broker, tmp_path)
    metrics_port = free_port()
    store = f"chdb://{tmp_path / 'store'}"
    proc = Process(
        [*FNSCOPE, "processor", "--kafka", broker, "--clickhouse", store],
        tmp_path / "processor.log",
        {"FNSCOPE_METRICS_PORT": str(metrics_port)},  # the processor has no HTTP API of its own
    ).start()
    try:
        assert httpx.get(f"{url}/readyz").json() == {"ready": True, "checks": {"kafka": True}}
        for n in range(4):
            assert httpx.post(f"{url}/ingest/cloudtrail", content=cloudtrail_file(250, 0, n)[0]).status_code == 200
        deadline = time.monotonic() + 60
        m: dict = {}
        while time.monotonic() < deadline:
            try:
                m = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            except httpx.HTTPError:
                m = {}
            if value(m, "fnscope_stored_events_total", signal="audit") == 1000:
                break
            time.sleep(0.3)
        assert value(m, "fnscope_stored_events_total", signal="audit") == 1000
        assert value(m, "fnscope_insert_batch_events_sum", role="processor") == 1000
        lag = {dict(ls)["topic"] for (n, ls), _ in m.items() if n == "fnscope_kafka_lag_messages"}
        assert "fnscope.audit" in lag, "lag is reported per assigned partition"
        for path in ("/healthz", "/readyz"):  # what compose's healthcheck asks
            assert httpx.get(f"http://127.0.0.1:{metrics_port}{path}").json() == {"ok": True}
    finally:
        proc.stop()
        collector.stop()
