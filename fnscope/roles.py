"""The process roles: `up` (embedded, everything in one process), `collector`, `processor` and `api`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

import uvicorn

from alerts.runtime import start_alerts
from collector.formats import cloudtrail
from collector.routes import StoreFirst
from fnscope import telemetry
from fnscope.auth import check_bind
from fnscope.config import Settings
from fnscope.malloc_tuning import tune_for_server
from fnscope.server import build_app
from fnscope.telemetry import pipeline_metrics
from processors.cloudtrail_bulk import CloudTrailBulk
from processors.group_commit import GroupCommitWriter, Saturated
from processors.integrity import start_audit_sealer
from processors.store import connect, open_store
from processors.writer import EventWriter
from query.runner import QueryRunner

BULK_HANDLES = 2  # CloudTrail bodies mapped at once by the store (each statement runs on one core)


def _serve(app: object, settings: Settings, banner: list[str]) -> None:
    check_bind(settings.host, settings.tokens)
    base = f"http://{settings.host}:{settings.port}"
    for line in banner:
        print(line.format(base=base), flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", timeout_graceful_shutdown=10)


def _simulate_forever(base_url: str, token: str | None) -> None:
    """`up --simulate`: demo traffic against ourselves, a minute of simulated fleet at a time."""
    import httpx

    from simulator.sender import run

    for _ in range(600):
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    seed = 1
    while True:
        run(base_url, functions=8, rate=20, duration_s=60, seed=seed, token=token, quiet=True)
        seed += 1


def run_up(settings: Settings, simulate: bool = False) -> None:
    check_bind(settings.host, settings.tokens)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    telemetry.configure_telemetry(settings)
    dsn = settings.clickhouse_dsn()
    metrics = pipeline_metrics()
    writer = EventWriter(open_store(dsn, settings.retention), health_client=connect(dsn))
    start_audit_sealer(settings, dsn)  # the audit hash chain (processors/integrity.py)
    start_alerts(settings, writer)  # evaluates alert rules as batches are stored, notifies webhooks
    sink = GroupCommitWriter(writer, settings.limits.max_pending_events, on_write=metrics.record_stored)
    runner = QueryRunner(connect(dsn))
    app = build_app(
        settings,
        metrics,
        sink,
        (Saturated,),
        runner,
        on_shutdown=sink.close,
        cloudtrail_first=_cloudtrail_first(settings),
    )
    if simulate:
        token = next(iter(settings.tokens), None)
        base_url = f"http://{settings.host}:{settings.port}"
        threading.Thread(target=_simulate_forever, args=(base_url, token), name="simulate", daemon=True).start()
    _serve(
        app,
        settings,
        [
            f"fnscope up: embedded store at {settings.data_dir.resolve()}",
            "  console  {base}/",
            "  ingest   {base}/ingest/telemetry | cloudwatch | firehose | apigateway | cloudtrail, {base}/v1/logs",
            "  query    {base}/api/search | audit | stats   (OpenAPI: {base}/docs)",
            "  health   {base}/healthz   metrics {base}/metrics",
            *(
                ["  simulate sending a simulated fleet's traffic to itself (8 functions, 20 invocations/s)"]
                if simulate
                else []
            ),
            "Ctrl-C flushes and stops.",
        ],
    )


def _cloudtrail_first(settings: Settings) -> StoreFirst:
    """CloudTrail log files mapped by the store itself; records recent enough to alert go through the parser."""
    bulk = CloudTrailBulk(
        [connect(settings.clickhouse_dsn()) for _ in range(BULK_HANDLES)],
        settings.limits.max_field_chars,
        settings.alerts.audit_max_age_s,
    )
    return StoreFirst(bulk.store, cloudtrail.parse_rest)


def run_collector(settings: Settings) -> None:
    from collector.kafka_sink import KafkaSink
    from fnscope.kafka_admin import ensure_topics

    tune_for_server()  # flat memory under sustained load (see the module)
    ensure_topics(settings.kafka, settings.kafka_topic_prefix, settings.kafka_partitions)
    sink = KafkaSink(settings.kafka, settings.kafka_topic_prefix)
    telemetry.configure_telemetry(settings)
    app = build_app(settings, pipeline_metrics(), sink, (), None, on_shutdown=sink.close)
    _serve(app, settings, [f"fnscope collector: writing to Kafka at {settings.kafka}", "  ingest   {base}/ingest/..."])


def run_api(settings: Settings) -> None:
    telemetry.configure_telemetry(settings)
    runner = QueryRunner(open_store(settings.clickhouse_dsn(), settings.retention))
    app = build_app(settings, pipeline_metrics(), runner=runner)
    _serve(
        app,
        settings,
        [f"fnscope api over {settings.clickhouse_dsn()}", "  console  {base}/", "  query    {base}/api/..."],
    )


def run_processor(settings: Settings, group_id: str = "fnscope-processors", max_records: int = 2000) -> None:
    from fnscope.kafka_admin import ensure_topics
    from processors.kafka_processor import KafkaProcessor

    tune_for_server()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    telemetry.configure_telemetry(settings)
    if settings.metrics_port:
        telemetry.serve_metrics(settings.metrics_port, settings.host)
    ensure_topics(settings.kafka, settings.kafka_topic_prefix, settings.kafka_partitions)
    writer = EventWriter(open_store(settings.clickhouse_dsn(), settings.retention), connect(settings.clickhouse_dsn()))
    start_audit_sealer(settings, settings.clickhouse_dsn())  # the audit hash chain
    start_alerts(settings, writer)  # alert rules over this processor's partitions
    processor = KafkaProcessor(settings.kafka, writer, settings.kafka_topic_prefix, group_id, max_records)
    signal.signal(signal.SIGTERM, lambda *_: processor.stop())
    print(f"fnscope processor: {settings.kafka} -> {settings.clickhouse_dsn()} (group {group_id})", flush=True)
    try:
        processor.run()
    except KeyboardInterrupt:
        processor.stop()
    sys.exit(0)
