"""The fault-injection run: a distributed fnscope under load, parts killed with SIGKILL at random moments and
restarted, then every acknowledged event id compared with what the query API shows.

What "acknowledged" can promise with this broker: Tansu here keeps its log in memory only, so a broker
`kill -9` erases every message it held, committed or not. A real Kafka (persistent, replicated, acks=all)
keeps them. So an acknowledged event that is missing is counted as **lost with the broker's memory** when a
broker kill happened after its acknowledgement and before it was stored, and as **lost** (by fnscope) otherwise.
The second must be 0. After restarting the broker the harness re-creates the topics, as a persistent broker
would still have them, and restarts the processor with it: its in-memory read positions belong to the erased log
(against a fresh log they would skip that many new messages), which cannot happen with a broker that keeps its log.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from faults.load import FUNCTIONS, Ledger, Load
from faults.processes import FNSCOPE, Managed, free_port, tansu_binary, wait_http, wait_port
from fnscope.kafka_admin import ensure_topics
from fnscope.transport import all_topics

GROUP = "fnscope-processors"
TARGETS = ("collector", "processor", "broker")


@dataclass
class RunConfig:
    work_dir: Path
    duration_s: float = 20.0
    senders: int = 3  # at most 10 (the API pages below tell senders apart by a name prefix)
    batch: int = 100  # records per request
    collectors: int = 2
    faults: int = 3  # how many kills; the first len(TARGETS) cover each kind once, the rest are random
    kinds: tuple[str, ...] = TARGETS
    seed: int = 1
    partitions: int = 3


@dataclass
class Fault:
    at_s: float
    target: str
    down_s: float


# What a run counts, in the order reports print them.
FIGURES = (
    "sent",
    "acked",
    "stored",
    "lost",
    "lost_with_broker_memory",
    "duplicates",
    "stored_unacked",
    "acked_after_broker_restart",
)


@dataclass
class Result:
    sent: int
    acked: int
    stored: int
    lost: int  # acknowledged, not stored, and no broker kill to blame
    lost_with_broker_memory: int  # acknowledged, then erased by a broker kill before it was stored
    duplicates: int  # rows beyond the first per event id, as the API shows them
    stored_unacked: int  # stored although the sender never saw the 2xx (it was still retrying): harmless
    acked_after_broker_restart: int  # acked by requests started after the last broker restart (all, if none)
    requests: int
    refusals: dict[str, int]
    faults: list[Fault] = field(default_factory=list)
    elapsed_s: float = 0.0
    lost_ids: list[str] = field(default_factory=list)


class Cluster:
    """Broker, collectors and one processor (chDB allows one writer process per store directory)."""

    def __init__(self, work_dir: Path, collectors: int, partitions: int) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir, self.partitions = work_dir, partitions
        self.broker_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.broker_port}"
        url = f"tcp://{self.bootstrap}"
        self.broker = Managed(
            "broker",
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            work_dir / "broker.log",
        )
        self.store = work_dir / "store"
        self.collector_ports = [free_port() for _ in range(collectors)]
        self.collectors = [
            Managed(
                f"collector-{i}",
                [*FNSCOPE, "collector", "--kafka", self.bootstrap, "--port", str(port)],
                work_dir / f"collector-{i}.log",
                env={"FNSCOPE_KAFKA_PARTITIONS": str(partitions)},
            )
            for i, port in enumerate(self.collector_ports)
        ]
        self.processor = Managed(
            "processor",
            [*FNSCOPE, "processor", "--kafka", self.bootstrap, "--clickhouse", f"chdb://{self.store}"],
            work_dir / "processor.log",
            env={"FNSCOPE_KAFKA_PARTITIONS": str(partitions)},
        )

    @property
    def collector_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.collector_ports]

    def start(self) -> None:
        self.start_broker()
        for i in range(len(self.collectors)):
            self.start_collector(i)
        self.processor.start()

    def start_broker(self) -> None:
        self.broker.start()
        wait_port(self.broker_port)
        ensure_topics(self.bootstrap, "fnscope", self.partitions)

    def start_collector(self, i: int) -> None:
        self.collectors[i].start()
        wait_http(f"{self.collector_urls[i]}/healthz", self.collectors[i])

    def topic_partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in all_topics("fnscope") for p in consumer.partitions_for_topic(t) or []]

    def log_ends(self) -> dict[TopicPartition, int]:
        """The offset after the last message of every partition, found by reading them all.

        Not ``end_offsets()``: Tansu 0.6 answers ListOffsets(latest) with the last record *batch*'s base offset
        + 1, which is short of the real end whenever the producer batched several messages.
        """
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, request_timeout_ms=5000)
        try:
            partitions = self.topic_partitions(consumer)
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = dict.fromkeys(partitions, 0)
            empty = 0
            while empty < 3:
                batch = consumer.poll(timeout_ms=500)
                empty = 0 if batch else empty + 1
                for tp, records in batch.items():
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
            return ends
        finally:
            consumer.close()

    def lag(self, ends: dict[TopicPartition, int]) -> int:
        """Messages before `ends` the processors' group has not committed yet."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
        try:
            offsets = admin.list_group_offsets({GROUP: list(ends)})[GROUP]
            committed = {tp: max(meta.offset, 0) for tp, meta in offsets.items()}
            return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
        finally:
            admin.close()

    def wait_drained(self, timeout: float = 120) -> None:
        """Once the load stopped: until the processor committed everything the broker holds."""
        ends = self.log_ends()
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if not self.processor.alive():
                raise RuntimeError(f"processor died:\n{self.processor.output()[-3000:]}")
            try:
                last = self.lag(ends)
                if last == 0:
                    return
            except Exception as exc:  # the broker may still be settling after a restart
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"processor did not drain within {timeout}s (last lag: {last!r}); see {self.work_dir}")

    def stored_ids(self, senders: int) -> list[str]:
        """Every audit event id the query API shows (one row per visible copy), a page per sender and function."""
        port = free_port()
        api = Managed(
            "api",
            [*FNSCOPE, "api", "--clickhouse", f"chdb://{self.store}", "--port", str(port)],
            self.work_dir / "api.log",
        ).start()
        ids: list[str] = []
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/healthz", api)
            for sender in range(senders):
                for function in range(FUNCTIONS):
                    params = {
                        "since": "1d",
                        "principal": f"user/loader-{sender}",
                        "resource": f"fn-{function}",
                        "limit": 100_000,
                    }
                    rows = httpx.get(f"{url}/api/audit", params=params, timeout=120).json()["results"]
                    if len(rows) >= 100_000:
                        raise RuntimeError("a page reached the API's 100,000-row limit: use more senders")
                    ids.extend(row["event_id"] for row in rows)
            return ids
        finally:
            api.stop()

    def stop(self) -> None:
        for proc in (*self.collectors, self.processor, self.broker):
            proc.stop()


def schedule(config: RunConfig) -> list[Fault]:
    """Random moments in the middle of the run; every kind of target at least once if there are enough faults."""
    rng = random.Random(config.seed)
    kinds = list(config.kinds)
    rng.shuffle(kinds)
    targets = [*kinds, *(rng.choice(config.kinds) for _ in range(max(0, config.faults - len(kinds))))][: config.faults]
    # A broker kill lands in the first half, so that requests started after its restart are checked strictly too.
    faults = [
        Fault(rng.uniform(0.1, 0.45 if target == "broker" else 0.8) * config.duration_s, target, rng.uniform(0.2, 1.5))
        for target in targets
    ]
    return sorted(faults, key=lambda f: f.at_s)


class Injector:
    def __init__(self, cluster: Cluster, faults: list[Fault], seed: int) -> None:
        self.cluster, self.faults = cluster, faults
        self.rng = random.Random(seed + 1)
        self.broker_restored: list[float] = []  # monotonic times a restarted broker took requests again
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)

    def start(self, t0: float) -> None:
        self.t0 = t0
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            for fault in self.faults:
                time.sleep(max(0.0, self.t0 + fault.at_s - time.monotonic()))
                self._inject(fault)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def _inject(self, fault: Fault) -> None:
        c = self.cluster
        if fault.target == "collector":
            i = self.rng.randrange(len(c.collectors))
            c.collectors[i].kill9()
            time.sleep(fault.down_s)
            c.start_collector(i)
        elif fault.target == "processor":
            c.processor.kill9()
            time.sleep(fault.down_s)
            c.processor.start()
        else:
            c.broker.kill9()
            # The processor's read positions point into the log the broker just erased; against the fresh log
            # they would skip its first messages (a persistent Kafka keeps the log, so this is Tansu-only).
            c.processor.kill9()
            time.sleep(fault.down_s)
            c.start_broker()
            self.broker_restored.append(time.monotonic())
            c.processor.start()


def run(config: RunConfig) -> Result:
    if not 1 <= config.senders <= 10:
        raise ValueError("1 to 10 senders")
    cluster = Cluster(config.work_dir, config.collectors, config.partitions)
    faults = schedule(config)
    ledger = Ledger()
    try:
        cluster.start()
        load = Load(cluster.collector_urls, config.senders, config.batch, ledger)
        injector = Injector(cluster, faults, config.seed)
        t0 = time.monotonic()
        load.start()
        injector.start(t0)
        time.sleep(max(0.0, t0 + config.duration_s - time.monotonic()))
        injector.join()
        load.stop()
        elapsed = time.monotonic() - t0
        cluster.wait_drained()
        cluster.processor.stop()
        stored = cluster.stored_ids(config.senders)
    finally:
        cluster.stop()
    return account(ledger, stored, injector.broker_restored, faults, elapsed)


def account(
    ledger: Ledger, stored: list[str], broker_restored: list[float], faults: list[Fault], elapsed: float
) -> Result:
    """Compare acknowledged ids with stored ids.

    A missing id is blamed on the broker's memory when its acknowledged request started before the last broker
    restart completed (the old broker may have taken it); a request started later can only have been acked by
    the broker that is still up, so its loss would be fnscope's.
    """
    stored_set = set(stored)
    missing = [i for i in ledger.acked if i not in stored_set]
    cutoff = max(broker_restored, default=float("-inf"))
    with_broker = [i for i in missing if ledger.acked[i] < cutoff]
    lost = sorted(set(missing) - set(with_broker))
    return Result(
        sent=len(ledger.sent),
        acked=len(ledger.acked),
        stored=len(stored_set & ledger.sent),
        lost=len(lost),
        lost_with_broker_memory=len(with_broker),
        duplicates=len(stored) - len(stored_set),
        stored_unacked=len(stored_set - set(ledger.acked)),
        acked_after_broker_restart=sum(1 for t in ledger.acked.values() if t >= cutoff),
        requests=ledger.requests,
        refusals=dict(ledger.refusals),
        faults=faults,
        elapsed_s=elapsed,
        lost_ids=lost[:20],
    )
