"""The process roles: `up` (embedded, everything in one process), `collector`, `processor` and `api`."""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
import time

import uvicorn

from fnscope import telemetry
from fnscope.alerts.runtime import start_alerts
from fnscope.app.dependencies import Stopped, wait_for
from fnscope.app.http import check_port_free, server_options
from fnscope.app.server import build_app
from fnscope.app.settings import Settings
from fnscope.audit_chain import load_signer
from fnscope.auth import check_bind, parse_grant
from fnscope.collector.formats import cloudtrail
from fnscope.collector.log_sink import LocalLogSink
from fnscope.collector.routes import StoreFirst
from fnscope.local_log import LocalLog
from fnscope.malloc_tuning import tune_for_server
from fnscope.processors.audit_sealer import start_audit_sealer
from fnscope.processors.cloudtrail_bulk import CloudTrailBulk
from fnscope.processors.health_aggregates import health_clients
from fnscope.processors.log_processor import LocalLogSource, LogProcessor
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.query.runner import QueryRunner
from fnscope.sink import Saturated
from fnscope.store import connect
from fnscope.telemetry import pipeline_metrics

log = logging.getLogger(__name__)
BULK_HANDLES = 2  # CloudTrail bodies mapped at once by the store (each statement runs on one core)
QUERY_HANDLES = 4
# how long the embedded processor gathers appends into one insert: inserts follow time, not senders, and a line is
# searchable well within a second of its 2xx
EMBEDDED_LINGER_S = 0.3
CLEAN_STOP_S = 30.0  # queries run at once: a slow one holds up only its own handle


def _check_address(settings: Settings) -> None:
    check_bind(settings.host, settings.tokens)
    check_port_free(settings.host, settings.port)


def _serve(app: object, settings: Settings, banner: list[str]) -> None:
    _check_address(settings)
    base = f"http://{settings.host}:{settings.port}"
    for line in banner:
        print(line.format(base=base), flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        **server_options(),
    )


def _simulate_forever(base_url: str, token: str | None, stop: threading.Event) -> None:
    """`up --simulate`: demo traffic against ourselves, a minute of simulated fleet at a time, until ``stop``."""
    import httpx

    from fnscope.simulator.sender import run

    for _ in range(600):
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    seed = 1
    while not stop.is_set():
        try:
            run(base_url, functions=8, rate=20, duration_s=60, seed=seed, token=token, quiet=True, appsync=True)
        except Exception as exc:  # noqa: BLE001 - the server stopping under the demo ends it quietly
            if stop.is_set():
                return
            log.warning("simulated traffic: %s", exc)
            stop.wait(5)
        seed += 1


def run_up(settings: Settings, simulate: bool = False) -> None:
    _check_address(settings)  # before the store opens and the banner shows
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _configure_telemetry(settings)
    dsn = settings.clickhouse_dsn()
    metrics = pipeline_metrics()
    writer = EventWriter(
        open_store(dsn, settings.retention, settings.clickhouse_cluster),
        health_clients=health_clients(dsn),
    )
    _start_listeners(settings, writer)
    # receivers acknowledge on the local durable log; the processor stores it, as in distributed mode
    local_log = LocalLog(settings.data_dir / "log" / "log.sqlite", settings.limits.max_log_bytes, metrics.log_bytes.set)
    sink = LocalLogSink(local_log)
    processor = LogProcessor(LocalLogSource(local_log), writer, "embedded", max_linger_s=EMBEDDED_LINGER_S)
    storing = threading.Thread(target=processor.run, name="processor", daemon=True)
    storing.start()
    runner = QueryRunner(*(connect(dsn) for _ in range(QUERY_HANDLES)))
    stopping = threading.Event()  # set as the server starts stopping: the demo traffic ends without a traceback

    def shutdown() -> None:
        stopping.set()
        sink.close()  # every acknowledged request is in the log
        processor.stop()
        storing.join(CLEAN_STOP_S)
        try:
            processor.drain(CLEAN_STOP_S)  # and in the store
        except Exception as exc:  # noqa: BLE001 - the store is down: the log keeps it, the next start stores it
            log.warning("stopped with %d bytes not yet stored (kept in the log): %s", local_log.held_bytes, exc)

    app = build_app(
        settings,
        metrics,
        sink,
        (Saturated,),
        runner,
        on_shutdown=shutdown,
        cloudtrail_first=_cloudtrail_first(settings),
    )
    if simulate:
        # the simulated fleet sends telemetry and CloudTrail: a token that may do both
        senders = [t for t, grant in settings.tokens.items() if {"telemetry", "audit"} <= parse_grant(grant).scopes]
        token = senders[0] if senders else None
        base_url = f"http://{settings.host}:{settings.port}"
        threading.Thread(
            target=_simulate_forever, args=(base_url, token, stopping), name="simulate", daemon=True
        ).start()
    try:
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
    finally:
        stopping.set()


def _configure_telemetry(settings: Settings) -> None:
    # `kill -USR1 PID` prints every thread's stack to stderr: how to see where a stuck role is, in production too
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    telemetry.configure_telemetry(settings.otlp_metrics_endpoint, settings.otlp_metrics_interval_s)


def _start_listeners(settings: Settings, writer: EventWriter) -> None:
    """What runs beside the writer in a process that stores events, each on a store connection of its own: the
    audit sealer (the hash chain) and the alert service (rules evaluated as batches are stored, webhooks)."""
    dsn = settings.clickhouse_dsn()
    start_audit_sealer(
        connect(dsn),
        load_signer(settings.audit_signing_key),
        settings.audit_seal_window_s,
        settings.audit_seal_settle_s,
    )
    start_alerts(
        settings.alerts,
        settings.alerts.delivery_targets(settings.alert_webhook_url),
        settings.base_url(),
        settings.account_concurrency_limit,
        connect(dsn),
        writer.listeners,
        settings.canary,
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
    from fnscope.collector.kafka_sink import KafkaSink

    tune_for_server()  # flat memory under sustained load (see the module)
    # topics are made when Kafka first answers: the collector may start before its broker
    sink = KafkaSink(settings.kafka, settings.kafka_topic_prefix, partitions=settings.kafka_partitions)
    _configure_telemetry(settings)
    app = build_app(settings, pipeline_metrics(), sink, (), None, on_shutdown=sink.close)
    _serve(app, settings, [f"fnscope collector: writing to Kafka at {settings.kafka}", "  ingest   {base}/ingest/..."])


def run_api(settings: Settings) -> None:
    _configure_telemetry(settings)
    dsn = settings.clickhouse_dsn()
    # opened at the first query, and again while the store does not answer: the api may start before its store
    runner = QueryRunner(
        open_handles=lambda: [
            open_store(dsn, settings.retention, settings.clickhouse_cluster),
            *(connect(dsn) for _ in range(QUERY_HANDLES - 1)),
        ]
    )
    app = build_app(settings, pipeline_metrics(), runner=runner)
    _serve(
        app,
        settings,
        [f"fnscope api over {settings.clickhouse_dsn()}", "  console  {base}/", "  query    {base}/api/..."],
    )


def run_processor(settings: Settings, group_id: str = "fnscope-processors", max_records: int = 2000) -> None:
    from fnscope.kafka_admin import ensure_topics
    from fnscope.processors.kafka_processor import kafka_processor

    tune_for_server()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # kafka-python warns of each connection attempt, several a second while a broker is down; the processor says
    # itself, once per attempt, what it waits for
    logging.getLogger("kafka").setLevel(logging.ERROR)
    _configure_telemetry(settings)
    stopping = threading.Event()
    running: list[LogProcessor] = []
    if settings.metrics_port:  # /metrics, /healthz and /readyz on a port of its own (it has no HTTP API)
        # live while it waits for Kafka and the store (an orchestrator starts roles in any order); ready once both
        # answered and the store takes its writes
        telemetry.serve_metrics(
            settings.metrics_port,
            settings.host,
            lambda: not running or running[0].live(),
            lambda: bool(running) and running[0].ready(),
        )

    def stop(*_: object) -> None:
        stopping.set()
        for each in running:
            each.stop()

    signal.signal(signal.SIGTERM, stop)
    print(f"fnscope processor: {settings.kafka} -> {settings.clickhouse_dsn()} (group {group_id})", flush=True)
    try:
        dsn = settings.clickhouse_dsn()
        wait_for(
            "Kafka",
            lambda: ensure_topics(settings.kafka, settings.kafka_topic_prefix, settings.kafka_partitions),
            stopping,
        )
        writer = wait_for(
            "the store",
            lambda: EventWriter(open_store(dsn, settings.retention, settings.clickhouse_cluster), health_clients(dsn)),
            stopping,
        )
        _start_listeners(settings, writer)  # alert rules over this processor's partitions, and the audit chain
        running.append(kafka_processor(settings.kafka, writer, settings.kafka_topic_prefix, group_id, max_records))
        if not stopping.is_set():
            running[0].run()
    except (KeyboardInterrupt, Stopped):
        stop()
    sys.exit(0)
