"""`fnscope up` acknowledges on its local durable log (SQLite, fnscope/local_log.py) and one processor loop — the one
distributed mode runs over Kafka — stores it. Real components: the SQLite file, chDB, and `fnscope up` as a process
killed with SIGKILL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fnscope.collector.log_sink import LocalLogSink
from fnscope.events import Signal
from fnscope.local_log import LocalLog, LogFull
from fnscope.processors.log_processor import LocalLogSource, LogProcessor
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.sink import StoreUnavailable
from tests.conftest import FNSCOPE, Process, free_port, wait_http
from tests.test_distributed import telemetry_batch
from tests.test_hostile_input import _api, _poison


def test_the_log_keeps_records_in_order_until_committed_and_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = LocalLog(path, max_bytes=1000)
    first = log.append([(Signal.API, b"a" * 100), (Signal.LOG, b"b" * 100)])
    log.append([(Signal.API, b"c" * 100)])
    assert log.held_bytes == 300 and [r.value[:1] for r in log.read(0, 10)] == [b"a", b"b", b"c"]
    log.commit(first)
    log.close()

    again = LocalLog(path, max_bytes=1000)  # as after a restart: the position and what follows it are kept
    assert again.position() == first and again.held_bytes == 100
    assert [(r.signal, r.value[:1]) for r in again.read(again.position(), 10)] == [(Signal.API, b"c")]
    with pytest.raises(LogFull):
        again.append([(Signal.API, b"d" * 950)])  # past the limit: the receivers answer 429
    again.commit(again.last_id())
    again.append([(Signal.API, b"e" * 5000)])  # an empty log takes any one append, so no request is refused for ever
    again.close()


def test_a_poison_record_in_the_log_costs_only_itself_and_never_blocks_the_log(tmp_path: Path) -> None:
    """A record the store refuses, handed over in this process, is isolated by halving the insert: a dead letter of
    its own tenant with the store's reason, the rest stored, the log moving on. Read back from the file after a
    restart, where it no longer validates (as one written by another release could), it is isolated the same way."""
    client = open_store(f"chdb://{tmp_path / 'store'}")
    log = LocalLog(tmp_path / "log.sqlite", 1 << 30)
    sink = LocalLogSink(log)
    processor = LogProcessor(LocalLogSource(log), EventWriter(client), "embedded", max_linger_s=0.05)
    try:
        # durable at once (a 2xx); the store's refusal comes later and is the processor's to handle
        assert sink.submit([_api("acme", 1), _poison("mallory"), _api("mallory", 2)]).result(30) is None
        assert processor.poll_once() == 3
        stored = client.query("SELECT event_id FROM api_access FINAL ORDER BY event_id").result_rows
        assert [row[0] for row in stored] == ["acme-1", "mallory-2"]
        letters = client.query("SELECT tenant, reason FROM dead_letters FINAL").result_rows
        assert len(letters) == 1 and letters[0][0] == "mallory" and "the store refused this record" in letters[0][1]
        assert log.held_bytes == 0 and log.position() == log.last_id()  # committed: not read again, not retried
    finally:
        sink.close()
        log.close()

    again = LocalLog(tmp_path / "log.sqlite", 1 << 30)  # a new process: only the bytes
    appended = LocalLogSink(again)
    try:
        appended.submit([_poison("initech"), _api("initech", 3)]).result(30)
        reader = LocalLogSource(LocalLog(tmp_path / "log.sqlite", 1 << 30))
        assert LogProcessor(reader, EventWriter(client), "embedded", max_linger_s=0.05).poll_once() == 2
        stored = client.query("SELECT event_id FROM api_access FINAL WHERE tenant = 'initech'").result_rows
        assert [row[0] for row in stored] == ["initech-3"]
        letters = client.query("SELECT reason FROM dead_letters FINAL WHERE tenant = 'initech'").result_rows
        assert len(letters) == 1 and "undecodable record" in letters[0][0]
    finally:
        appended.close()
        client.close()


def test_a_request_that_stopped_waiting_costs_nobody_else(tmp_path: Path) -> None:
    """A request that timed out cancels its future; the append that then completes must not fail on it (the append
    thread died of it once, and every later request was a 503)."""
    log = LocalLog(tmp_path / "log.sqlite", 1 << 30)
    sink = LocalLogSink(log)
    try:
        gave_up = sink.submit([_api("acme", 1)])
        assert gave_up.cancel()  # still queued: the append thread waits a few ms for company
        later = sink.submit([_api("acme", 2)])
        assert later.result(30) is None and sink.ready()
        assert sink.submit([_api("acme", 3)]).result(30) is None
        assert log.last_id() == 3  # the cancelled request's records were appended all the same
    finally:
        sink.close()
        log.close()


def test_a_store_outage_fills_the_log_not_memory_and_nothing_is_lost_when_it_recovers(tmp_path: Path) -> None:
    client = open_store(f"chdb://{tmp_path / 'store'}")
    log = LocalLog(tmp_path / "log.sqlite", 1 << 30)
    sink = LocalLogSink(log)
    processor = LogProcessor(LocalLogSource(log), EventWriter(client), "embedded", max_linger_s=0.05)
    storing = threading.Thread(target=processor.run)
    try:
        client.command("DETACH TABLE api_access")
        storing.start()
        for n in range(20):
            assert sink.submit([_api("acme", n)]).result(30) is None  # still acknowledged: the log holds them
        deadline = time.monotonic() + 30
        while processor.ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not processor.ready() and sink.ready()
        assert log.held_bytes > 0 and log.position() == 0  # nothing committed while nothing was stored
        assert client.query("SELECT count() FROM dead_letters").result_rows[0][0] == 0  # no record blamed

        client.command("ATTACH TABLE api_access")
        deadline = time.monotonic() + 60
        while log.held_bytes and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.held_bytes == 0 and processor.ready()
        stored = client.query("SELECT event_id FROM api_access FINAL").result_rows
        assert sorted(row[0] for row in stored) == sorted(f"acme-{n}" for n in range(20))
    finally:
        processor.stop()
        storing.join(30)
        sink.close()
        client.close()


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from fnscope.collector.log_sink import LocalLogSink
from fnscope.local_log import LocalLog
from tests.test_hostile_input import _api

log = LocalLog(Path(sys.argv[1]), 1 << 30)
if sys.argv[2] == "rlimit":  # a write past the limit fails (EFBIG), as a write to a full disk does
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
sink = LocalLogSink(log)
acked = 0
for n in range(100_000):
    try:
        sink.submit([_api("acme" * 300, n)]).result(30)
        acked += 1
    except Exception as exc:
        print(type(exc).__name__, getattr(exc, "full", None), acked, flush=True)
        break
print("ready", sink.ready())
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A 2 MB file system of its own (tmpfs; root may mount one), else a 2 MB limit on the file's size."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        yield mount, "rlimit"
        return
    try:
        yield mount, "tmpfs"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_503_and_keeps_what_was_acknowledged(small_disk: tuple[Path, str]) -> None:
    disk, how = small_disk
    path = disk / "log.sqlite"
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path), how], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split("\n")
    kind, full, acked = out[0].split()
    assert kind == StoreUnavailable.__name__ and int(acked) > 0  # a 503, after every earlier request was acknowledged
    if how == "tmpfs":
        assert full == "True"  # "store full, retry later"
    assert out[1] == "ready False"  # /readyz says so and senders hear 503 before their bodies are read
    log = LocalLog(path, 1 << 30)
    try:
        assert len(log.read(0, 1_000_000)) == int(acked)  # every acknowledged append is there, intact
    finally:
        log.close()


def _send_until(url: str, stop: threading.Event, acked: set[str], sender: int) -> None:
    n = 0
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            first = sender * 1_000_000 + n * 20
            try:
                r = client.post(
                    f"{url}/ingest/telemetry?function=f{sender}", content=telemetry_batch(f"f{sender}", first, 20)
                )
            except httpx.HTTPError:
                time.sleep(0.05)  # the server is being killed or restarted: this request was not acknowledged
                continue
            if r.status_code == 200:
                acked.update(f"req-f{sender}-{i:08d}" for i in range(first, first + 20))
            n += 1


@pytest.mark.parametrize("round_", range(3))
def test_kill9_of_up_at_random_moments_under_load_loses_and_doubles_nothing(tmp_path: Path, round_: int) -> None:
    """Senders with unique request ids; `fnscope up` SIGKILLed three times mid-stream (mid-append, mid-insert or
    before the log commit, wherever it is) and restarted on the same data: every acknowledged invocation is stored,
    and none shows twice."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*FNSCOPE, "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
    rng = random.Random(round_)
    acked: set[str] = set()
    stop = threading.Event()
    proc = Process(args, tmp_path / "up-0.log").start()
    wait_http(f"{url}/healthz", proc=proc.proc)
    senders = [threading.Thread(target=_send_until, args=(url, stop, acked, s)) for s in range(4)]
    for sender in senders:
        sender.start()
    try:
        for kill in range(3):
            time.sleep(rng.uniform(1.0, 3.0))
            proc.kill9()
            proc = Process(args, tmp_path / f"up-{kill + 1}.log").start()
            wait_http(f"{url}/healthz", proc=proc.proc)
        time.sleep(1)
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)
    try:
        # read your writes: an empty request that waits until everything acknowledged before it is stored
        r = httpx.post(f"{url}/ingest/telemetry?wait=stored", content=b"[]", timeout=60)
        assert r.status_code == 200
        assert acked, "the senders must have been acknowledged between the kills"
        assert r.json()["stored"] is True
    finally:
        assert proc.stop() == 0
    from fnscope.store import connect

    client = connect(f"chdb://{tmp_path / 'data' / 'store'}")
    try:
        rows = client.query("SELECT request_id FROM invocations FINAL").result_rows
    finally:
        client.close()
    stored = [row[0] for row in rows]
    assert len(stored) == len(set(stored))  # none twice, as every reader sees the table
    assert acked <= set(stored), f"{len(acked - set(stored))} acknowledged invocations lost"
    print(json.dumps({"acked": len(acked), "stored": len(stored)}))
