"""Roles start in any order, as an orchestrator starts them: a processor or api whose Kafka or store is not up yet
serves /healthz, says not ready on /readyz (the api answers 503 where it needs the store), and gets to work when
they come — all as real processes against a real broker (Tansu) and chDB.

There is no ClickHouse server here (STACK.md): a store "not up yet" is a chDB directory held by another process
(chDB opens a directory in one process at a time), released later — the same engine refusing, then answering.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fnscope.store import connect
from tests.conftest import FNSCOPE, Process, free_port, tansu_binary, wait_http
from tests.test_distributed import start_collector, telemetry_batch, wait_until_drained

HOLD = (
    "import sys; from chdb import session; s = session.Session(sys.argv[1]); s.query('SELECT 1'); "
    "print('held', flush=True); sys.stdin.read()"
)


@contextmanager
def store_held_elsewhere(store: Path) -> Iterator[subprocess.Popen]:
    """Another process has the store open until the block's code releases it (``release``) or the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    try:
        yield holder
    finally:
        release(holder)


def release(holder: subprocess.Popen) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)


def stays_not_ready(url: str, proc: Process, seconds: float) -> None:
    """For ``seconds``, the role runs, is live and says it is not ready."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.proc is not None and proc.proc.poll() is None, proc.output()
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
        time.sleep(0.5)


def wait_for_line(proc: Process, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output():
        assert time.monotonic() < deadline, proc.output()
        time.sleep(0.2)


def test_processor_started_before_kafka_and_its_store_gets_to_work_when_they_come(tmp_path: Path) -> None:
    broker_port, health_port = free_port(), free_port()
    broker = f"127.0.0.1:{broker_port}"
    store = tmp_path / "store"
    health = f"http://127.0.0.1:{health_port}"
    with store_held_elsewhere(store) as holder:
        proc = Process(
            [*FNSCOPE, "processor", "--kafka", broker, "--clickhouse", f"chdb://{store}"],
            tmp_path / "processor.log",
            {"FNSCOPE_METRICS_PORT": str(health_port)},
        ).start()
        tansu: Process | None = None
        collector: Process | None = None
        try:
            wait_http(f"{health}/healthz", proc=proc.proc)
            stays_not_ready(health, proc, 3)
            wait_for_line(proc, "waiting for Kafka")

            url = f"tcp://{broker}"
            tansu = Process(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                tmp_path / "tansu.log",
            ).start()
            wait_for_line(proc, "waiting for the store")
            stays_not_ready(health, proc, 2)  # Kafka answers; the store does not yet

            release(holder)
            wait_http(f"{health}/readyz", timeout=90, proc=proc.proc)
            collector_url, collector = start_collector(broker, tmp_path)
            r = httpx.post(f"{collector_url}/ingest/telemetry?function=late", content=telemetry_batch("late", 0, 20))
            assert r.status_code == 200, r.text
            wait_until_drained(broker, proc)
            assert proc.stop() == 0
        finally:
            for each in (collector, proc, tansu):
                if each is not None:
                    each.stop()
    client = connect(f"chdb://{store}")
    try:
        assert client.command("SELECT count() FROM invocations WHERE function = 'late'") == 20
    finally:
        client.close()


def test_api_started_before_its_store_answers_503_then_serves(tmp_path: Path) -> None:
    store = tmp_path / "store"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with store_held_elsewhere(store) as holder:
        api = Process(
            [*FNSCOPE, "api", "--clickhouse", f"chdb://{store}", "--port", str(port)], tmp_path / "api.log"
        ).start()
        try:
            wait_http(f"{url}/healthz", proc=api.proc)
            stays_not_ready(url, api, 2)
            r = httpx.get(f"{url}/api/stats", params={"since": "1h"}, timeout=30)
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert r.json() == {"detail": "store unavailable, retry later"}
            assert httpx.get(f"{url}/", timeout=5).status_code == 200  # the console itself needs no store

            release(holder)
            wait_http(f"{url}/readyz", timeout=90, proc=api.proc)
            r = httpx.get(f"{url}/api/stats", params={"since": "1h"}, timeout=30)
            assert r.status_code == 200 and r.json()["functions"] == []
        finally:
            api.stop()
