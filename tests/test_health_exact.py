"""Function health against a brute-force reference computed here from the same generated invocations.

Facts arrive shuffled, minutes late, twice (the same fact by a second path 1 ms later, and the same copy
re-delivered), across a processor restart (a new EventWriter on the same store) and, on the real broker,
across a rebalance between two Kafka processors. Concurrency counts, as Lambda does, the environments
initialising as well as the invocations running; an init is stated by the cold start's REPORT (Init Duration),
by a Telemetry ``platform.initReport``, by a CloudWatch ``INIT_REPORT`` line, or by several of them. It must
match exactly at every second, minute and hour, per function, account and in total; counts exactly;
percentiles within the t-digest's rank error.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from fnscope.events import ApiAccess, AuditEvent, Event, Invocation, stable_id
from fnscope.kafka_admin import ensure_topics
from fnscope.processors import health_aggregates
from fnscope.processors.health_concurrency import INIT_REPORT_TRIM_MS, recompute_concurrency
from fnscope.processors.kafka_processor import KafkaSource
from fnscope.processors.log_processor import LogProcessor
from fnscope.processors.store import open_store
from fnscope.processors.writer import EventWriter
from fnscope.query.runner import QueryRunner
from fnscope.query.stats import StatsRequest, stats
from fnscope.transport import encode_batches, topic
from tests.test_distributed import group_lag

BASE = datetime(2026, 3, 2, 9, 58, 0, tzinfo=UTC)  # two minutes before an hour boundary
ACCOUNTS = {"orders": "111111111111", "payments": "111111111111", "images": "222222222222"}


@dataclass(frozen=True)
class Inv:
    function: str
    request_id: str
    version: str
    start_ms: int  # from BASE
    duration_ms: int
    status: str  # success | error | timeout | oom
    init_ms: int | None
    paths: str  # "first" (exact copy only), "both" (plus a copy 1 ms later), "second" (only the later copy)
    with_start: bool  # a platform.start fact too
    init_in_report: bool = True  # the REPORT states the Init Duration (else only init reports do, if any)
    init_sources: tuple[str, ...] = ()  # init reports of this environment: "telemetry", "cloudwatch", "firehose"

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


def _t(ms: int) -> datetime:
    return BASE + timedelta(milliseconds=ms)


def facts(inv: Inv) -> list[Event]:
    """The invocation facts as the receivers produce them, one per delivery path."""
    account = ACCOUNTS[inv.function]
    common = dict(source="test", function=inv.function, version=inv.version, request_id=inv.request_id, account=account)
    out: list[Event] = []
    for lag in {"first": (0,), "both": (0, 1), "second": (1,)}[inv.paths]:
        end = _t(inv.end_ms + lag)
        out.append(
            Invocation(
                event_id="",
                time=end,
                kind="report",
                status="error" if inv.status == "oom" else inv.status,
                error_type={"timeout": "Sandbox.Timedout", "oom": "Runtime.OutOfMemory"}.get(inv.status, ""),
                start_time=end - timedelta(milliseconds=inv.duration_ms),
                duration_ms=float(inv.duration_ms),
                billed_duration_ms=float(inv.duration_ms),
                memory_size_mb=256,
                max_memory_used_mb=64,
                init_duration_ms=float(inv.init_ms) if inv.init_ms is not None and inv.init_in_report else None,
                cold_start=inv.init_ms is not None and inv.init_in_report,
                **common,
            )
        )
    if inv.with_start:
        out.append(Invocation(event_id="", time=_t(inv.start_ms), kind="start", start_time=_t(inv.start_ms), **common))
    if inv.status in ("timeout", "oom"):  # the log line that states it, as CloudWatch delivers it
        out.append(Invocation(event_id="", time=_t(inv.end_ms), kind=inv.status, status=inv.status, **common))
    if inv.init_ms is not None:
        out.extend(init_reports(inv.function, inv.request_id, inv.start_ms, inv.init_ms, inv.init_sources))
    return out


def init_reports(function: str, env: str, end_ms: int, init_ms: int, sources: tuple[str, ...]) -> list[Event]:
    """An environment's init as each source states it: no request id, ending where the init ended. CloudWatch and
    Firehose carry the same line, so the same id."""
    return [
        Invocation(
            event_id=stable_id("init", "logs" if source in ("cloudwatch", "firehose") else source, function, env),
            time=_t(end_ms),
            kind="init_report",
            source=source,
            function=function,
            account=ACCOUNTS[function],
            init_duration_ms=float(init_ms),
            status="success",
        )
        for source in sources
    ]


def throttle_events(function: str, n: int, at_ms: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        when = _t(at_ms + i * 7)
        rid = f"{function}-throttle-{at_ms}-{i}"
        out.append(
            ApiAccess(
                event_id=stable_id("api", rid),
                time=when,
                source="apigateway",
                function=function,
                status=429,
                throttled=True,
                error_message="Rate Exceeded.",
            )
        )
        out.append(
            AuditEvent(
                event_id=stable_id("trail", rid),
                time=when,
                source="cloudtrail",
                account=ACCOUNTS[function],
                action="Invoke",
                function=function,
                error_code="TooManyRequestsException",
                raw='{"additionalEventData": {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}}',
            )
        )
    return out


# --- the reference -------------------------------------------------------------------------------------------


def intervals(events: list[Event]) -> dict[tuple[str, str], tuple[int, int, str]]:
    """(function, request) -> (start ms, end ms, account): earliest start any fact states, earliest report."""
    starts: dict[tuple[str, str], int] = {}
    ends: dict[tuple[str, str], int] = {}
    for e in events:
        if not isinstance(e, Invocation) or e.kind not in ("report", "start"):
            continue
        key = (e.function, e.request_id)
        s = round((e.start_time - BASE).total_seconds() * 1000)
        starts[key] = min(starts.get(key, s), s)
        if e.kind == "report":
            t = round((e.time - BASE).total_seconds() * 1000)
            ends[key] = min(ends.get(key, t), t)
    return {k: (starts[k], ends[k], ACCOUNTS[k[0]]) for k in ends}


def init_spans(events: list[Event]) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """function -> family -> init spans (ms): each REPORT's Init Duration before its request's start, and each
    init report (one per id: copies count once) by its family of paths, ending a little early (the start of the
    invocation after it is known only to a millisecond or so)."""
    starts = {key: s for key, (s, _e, _a) in intervals(events).items()}
    by_report: dict[tuple[str, str], int] = {}
    by_id: dict[str, tuple[str, str, int, int]] = {}
    for e in events:
        if isinstance(e, Invocation) and e.kind == "report" and e.init_duration_ms:
            by_report[(e.function, e.request_id)] = round(e.init_duration_ms)
        elif isinstance(e, Invocation) and e.kind == "init_report":
            end = round((e.time - BASE).total_seconds() * 1000)
            family = "logs" if e.source in ("cloudwatch", "firehose") else "telemetry"
            by_id[e.event_id] = (e.function, family, end - round(e.init_duration_ms or 0), end - INIT_REPORT_TRIM_MS)
    out: dict[str, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for (function, rid), init in by_report.items():
        out[function]["report"].append((starts[(function, rid)] - init, starts[(function, rid)]))
    for function, family, a, b in by_id.values():
        out[function][family].append((a, b))
    return out


def brute_force_running(runs: list[tuple[int, int]], inits: list[dict[str, list[tuple[int, int]]]], t: int) -> int:
    """At instant t: the invocations running, plus per function the most initialising that any family shows."""
    running = sum(1 for a, b in runs if a <= t < b)
    return running + sum(max(sum(1 for a, b in spans if a <= t < b) for spans in fam.values()) for fam in inits)


def brute_force_peaks(
    runs: list[tuple[int, int]], inits: list[dict[str, list[tuple[int, int]]]], first_s: int, last_s: int
) -> dict[int, int]:
    """Second -> the most running at one instant of it, by counting at every instant that could be a max."""
    starts = [a for a, _ in runs] + [a for fam in inits for spans in fam.values() for a, _ in spans]
    ends = [b for fam in inits for spans in fam.values() for _, b in spans]  # an init's end can raise another family
    out = {}
    for s in range(first_s, last_s + 1):
        instants = [s * 1000] + [a for a in starts + ends if s * 1000 <= a < s * 1000 + 1000]
        out[s] = max(brute_force_running(runs, inits, t) for t in instants)
    return out


def reference_peaks(events: list[Event]) -> dict[tuple[str, str, int, int], int]:
    """(scope, key, resolution, bucket start in seconds from BASE) -> peak; buckets aligned to the clock."""
    runs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    inits: dict[tuple[str, str], list[dict[str, list[tuple[int, int]]]]] = defaultdict(list)
    for (function, _), (s, e, account) in intervals(events).items():
        for key in (("function", function), ("account", account), ("total", "")):
            runs[key].append((s, e))
    for function, families in init_spans(events).items():
        for key in (("function", function), ("account", ACCOUNTS[function]), ("total", "")):
            inits[key].append(families)
    base = int(BASE.timestamp())
    out = {}
    for scope, key in set(runs) | set(inits):
        spans = runs[(scope, key)] + [span for fam in inits[(scope, key)] for ss in fam.values() for span in ss]
        first, last = min(a for a, _ in spans) // 1000 - 3, max(b for _, b in spans) // 1000 + 3
        seconds = brute_force_peaks(runs[(scope, key)], inits[(scope, key)], first, last)
        for res in (1, 60, 3600):
            for sec, peak in seconds.items():
                bucket = (base + sec) // res * res - base
                out[(scope, key, res, bucket)] = max(out.get((scope, key, res, bucket), 0), peak)
    return out


def stored_peaks(client, tenant: str) -> dict[tuple[str, str, int, int], int]:
    base = int(BASE.timestamp())
    rows = client.query(
        "SELECT scope, key, resolution, toUnixTimestamp(bucket), peak FROM concurrency_peaks FINAL "
        "WHERE tenant = {tenant:String}",
        parameters={"tenant": tenant},
    ).result_rows
    return {(scope, key, res, ts - base): peak for scope, key, res, ts, peak in rows}


def assert_peaks_exact(client, tenant: str, events: list[Event]) -> None:
    expected = reference_peaks(events)
    got = stored_peaks(client, tenant)
    wrong = {k: (got.get(k, 0), v) for k, v in expected.items() if got.get(k, 0) != v}
    assert not wrong, f"{len(wrong)} buckets differ (stored, reference): {sorted(wrong.items())[:10]}"
    extra = {k: v for k, v in got.items() if k not in expected and v != 0}
    assert not extra, f"peaks where the reference has none: {sorted(extra.items())[:10]}"
    assert any(v > 0 for v in got.values()) == any(v > 0 for v in expected.values())


def assert_stats_exact(client, tenant: str, invs: list[Inv], throttles: dict[str, int]) -> None:
    req = StatsRequest(tenant, BASE - timedelta(hours=1), BASE + timedelta(hours=2))
    out = stats(QueryRunner(client), req, by_version=True)
    for row in out["versions"]:
        mine = [i for i in invs if i.function == row["function"] and i.version == row["version"]]
        assert row["invocations"] == len(mine)
        assert row["errors"] == sum(i.status != "success" for i in mine)
        assert row["timeouts"] == sum(i.status == "timeout" for i in mine)
        assert row["out_of_memory"] == sum(i.status == "oom" for i in mine)
        assert row["cold_starts"] == sum(i.init_ms is not None and i.init_in_report for i in mine)
        durations = sorted(i.duration_ms for i in mine)
        assert row["max_ms"] == durations[-1]
        for q, name in ((0.5, "p50_ms"), (0.99, "p99_ms")):
            assert_within_rank(row[name], durations, q)
        inits = sorted(i.init_ms for i in mine if i.init_ms is not None and i.init_in_report)
        if inits:
            assert_within_rank(row["init_p50_ms"], inits, 0.5)
        else:
            assert row["init_p50_ms"] is None
    assert {(r["function"], r["version"]) for r in out["versions"]} == {(i.function, i.version) for i in invs}
    by_function = {r["function"]: r for r in out["functions"]}
    for function, n in throttles.items():
        assert by_function[function]["throttles_by_source"] == {"apigateway": n, "cloudtrail": n}
        assert by_function[function]["throttles"] == n
    peaks = reference_peaks([e for i in invs for e in facts(i)])
    for function, row in by_function.items():
        expected = max(
            (v for (s, k, res, _), v in peaks.items() if (s, k, res) == ("function", function, 1)), default=0
        )
        assert row["peak_concurrency"] == expected


def assert_within_rank(value: float, ordered: list[int], q: float) -> None:
    """t-digest promises rank error, not value error: the answer lies between the values a few ranks around q."""
    n = len(ordered)
    slack = max(1, math.ceil(0.01 * n))
    lo = ordered[max(0, math.floor(q * (n - 1)) - slack)]
    hi = ordered[min(n - 1, math.ceil(q * (n - 1)) + slack)]
    assert lo - 0.01 <= value <= hi + 0.01, (value, q, ordered)


# --- generated scenarios -------------------------------------------------------------------------------------

_START = st.one_of(st.integers(0, 190_000), st.integers(0, 190).map(lambda s: s * 1000))  # whole seconds are edges
_DURATION = st.one_of(st.integers(0, 3_000), st.integers(0, 75_000), st.integers(1, 70).map(lambda s: s * 1000))


@st.composite
def invocations(draw: st.DrawFn) -> list[Inv]:
    n = draw(st.integers(1, 30))
    return [
        Inv(
            function=draw(st.sampled_from(sorted(ACCOUNTS))),
            request_id=f"req-{i}",
            version=draw(st.sampled_from(["1", "2"])),
            start_ms=draw(_START),
            duration_ms=draw(_DURATION),
            status=draw(st.sampled_from(["success", "success", "error", "timeout", "oom"])),
            init_ms=draw(st.none() | st.integers(80, 1500) | st.integers(1, 10).map(lambda s: s * 1000)),
            paths=draw(st.sampled_from(["first", "both", "second"])),
            with_start=draw(st.booleans()),
            init_in_report=draw(st.booleans()),
            init_sources=draw(
                st.sampled_from(
                    [(), ("telemetry",), ("cloudwatch",), ("cloudwatch", "firehose"), ("telemetry", "cloudwatch")]
                )
            ),
        )
        for i in range(n)
    ]


def delivery(events: list[Event], seed: int, batches: int) -> list[list[Event]]:
    """Shuffled, every fact possibly twice, a quarter held back to arrive after everything else (late)."""
    rng = random.Random(seed)
    sent = events + [e for e in events if rng.random() < 0.3]
    rng.shuffle(sent)
    late = [e for e in sent if rng.random() < 0.25]
    on_time = [e for e in sent if not any(e is x for x in late)]
    size = max(1, math.ceil(len(on_time) / batches))
    return [on_time[i : i + size] for i in range(0, len(on_time), size)] + ([late] if late else [])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One chDB store for the module (chDB opens one path per process); each test writes its own tenants."""
    client = open_store(f"chdb://{tmp_path_factory.mktemp('health') / 'store'}")
    yield client
    client.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    invs=invocations(),
    seed=st.integers(0, 2**32),
    batches=st.integers(1, 3),
    throttled=st.integers(0, 3),
    restart=st.booleans(),
)
def test_health_matches_brute_force_whatever_the_delivery(
    store, invs: list[Inv], seed: int, batches: int, throttled: int, restart: bool
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"  # one store for every example, each in its own tenant
    events = [e for i in invs for e in facts(i)] + throttle_events("payments", throttled, 61_000)
    for e in events:
        e.tenant = tenant
    rounds = delivery(events, seed, batches)
    writer = EventWriter(store)
    for n, batch in enumerate(rounds):
        if restart and n == len(rounds) // 2:
            writer.health.stop()  # the processor dies: what it stored but had not aggregated yet is lost from memory
            writer = EventWriter(store)
        writer.write(batch)
    writer.health.flush()
    assert_peaks_exact(store, tenant, events)
    assert_stats_exact(store, tenant, invs, {"payments": throttled} if throttled else {})


# --- a rebalance between two processors on the real broker --------------------------------------------------


def test_exact_across_a_rebalance_between_two_processors(broker: str, store: Client) -> None:
    rng = random.Random(7)
    tenant = f"rebalance-{uuid.uuid4().hex[:8]}"
    invs = [
        Inv(
            function=rng.choice(sorted(ACCOUNTS)),
            request_id=f"rb-{i}",
            version=rng.choice(["1", "2"]),
            start_ms=rng.randint(0, 180_000),
            duration_ms=int(rng.lognormvariate(math.log(400), 1.2)) % 60_000,
            status=rng.choice(["success"] * 8 + ["error", "timeout"]),
            init_ms=rng.randint(100, 900) if rng.random() < 0.1 else None,
            paths=rng.choice(["first", "both", "second"]),
            with_start=rng.random() < 0.5,
        )
        for i in range(300)
    ]
    events = [e for i in invs for e in facts(i)]
    for e in events:
        e.tenant = tenant
    rng.shuffle(events)
    late = events[-60:]  # re-sent minutes later, after both processors have been through everything once
    ensure_topics(broker, "fnscope", partitions=4)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")

    def produce(batch: list[Event]) -> None:
        for signal, key, value in encode_batches(batch):
            producer.send(topic("fnscope", signal), key=key.encode(), value=value)
        producer.flush()

    for i in range(0, len(events), 60):
        produce(events[i : i + 60])

    writer = EventWriter(store)  # chDB allows one process per store: both members share this process's writer
    first_source = KafkaSource(broker, session_timeout_ms=6000)
    first = LogProcessor(first_source, writer, "processor", max_records=4)
    written = 0
    deadline = time.monotonic() + 60
    while written < len(events) // 3 and time.monotonic() < deadline:
        written += first.poll_once(0.2)
    assert written > 0, "the first processor must have written part of the topics before the second joins"

    second_source = KafkaSource(broker, session_timeout_ms=6000)
    second = LogProcessor(second_source, writer, "processor", max_records=4)
    stop = threading.Event()

    def run(member: LogProcessor) -> None:
        while not stop.is_set():
            member.poll_once(0.2)

    threads = [threading.Thread(target=run, args=(m,)) for m in (first, second)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (second_source.assignment() and len(first_source.assignment()) < 20):
            time.sleep(0.2)
        # The group rebalanced: the partitions are now split between the two members.
        assert second_source.assignment() and len(first_source.assignment()) < 20
        produce(late)  # minutes late, and copies of facts already written
        wait_drained(broker, deadline=time.monotonic() + 90)
        writer.health.flush()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        for source in (first_source, second_source):
            source.close()
        producer.close()
    assert_peaks_exact(store, tenant, events)
    assert_stats_exact(store, tenant, invs, {})


def wait_drained(broker: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if group_lag(broker)[1] == 0:
            return
        time.sleep(0.3)
    raise TimeoutError(f"the processors did not drain the topics: {group_lag(broker)}")


# --- initialisations occupy concurrency ----------------------------------------------------------------------


def _cold_starts_beside_a_warm_invocation(tenant: str, report_states_init: bool, name: str = "orders") -> list[Event]:
    """A warm invocation over seconds 0-5; three cold starts whose inits (1.0-2.0, 1.2-2.2, 1.4-2.4 s) overlap
    each other and it, each stated by its REPORT (or not), a Telemetry initReport and a CloudWatch INIT_REPORT
    delivered by both the subscription and Firehose."""
    invs = [Inv(name, "warm", "1", 0, 5_000, "success", None, "both", True)]
    invs += [
        Inv(
            name,
            f"cold-{n}",
            "1",
            2_000 + 200 * n,
            100,
            "success",
            1_000,
            "both",
            n == 0,
            init_in_report=report_states_init,
            init_sources=("telemetry", "cloudwatch", "firehose"),
        )  # fmt: skip
        for n in range(3)
    ]
    events = [e for i in invs for e in facts(i)]
    for e in events:
        e.tenant = tenant
    return events


@pytest.mark.parametrize("report_states_init", [True, False])
def test_overlapping_initialisations_count_as_lambda_counts_them(store, report_states_init: bool) -> None:
    tenant = f"inits-{uuid.uuid4().hex[:8]}"
    events = _cold_starts_beside_a_warm_invocation(tenant, report_states_init)
    writer = EventWriter(store)
    for batch in delivery(events, 11, 3):
        writer.write(batch)
    writer.health.flush()
    seconds = {
        b: p for (scope, key, res, b), p in stored_peaks(store, tenant).items() if res == 1 and scope == "function"
    }
    # 1.4-2.0 s: the warm invocation and three inits; at 2.0 s the first environment runs, the other two still init
    assert [seconds.get(s, 0) for s in range(6)] == [1, 4, 4, 1, 1, 0]
    reference = {b: p for (s, k, r, b), p in reference_peaks(events).items() if r == 1 and s == "function"}
    assert {b: p for b, p in seconds.items() if p} == {b: p for b, p in reference.items() if p}
    req = StatsRequest(tenant, BASE - timedelta(minutes=5), BASE + timedelta(minutes=5))
    row = stats(QueryRunner(store), req)["functions"][0]
    assert row["peak_concurrency"] == 4
    assert row["cold_starts"] == (3 if report_states_init else 0)


def test_two_environments_initialising_alike_are_two(store) -> None:
    """Two cold starts at the same millisecond after inits of the same length, known from their REPORTs only."""
    tenant = f"twins-{uuid.uuid4().hex[:8]}"
    twins = [Inv("orders", f"twin-{n}", "1", 2_000, 500, "success", 1_000, "both", False) for n in range(2)]
    events = [e for inv in twins for e in facts(inv)]
    for e in events:
        e.tenant = tenant
    writer = EventWriter(store)
    writer.write(events)
    writer.health.flush()
    peaks = stored_peaks(store, tenant)
    assert [peaks.get(("function", "orders", 1, s), 0) for s in range(3)] == [0, 2, 2]


def test_inits_reach_the_sweep_whatever_the_function_is_called(store) -> None:
    """The init steps travel in the statement's text (not its URL): a name with quotes and backslashes is a value."""
    tenant = f"quoted-{uuid.uuid4().hex[:8]}"
    name = "it's\\a'); DROP TABLE invocations; --"
    ACCOUNTS.setdefault(name, "333333333333")
    writer = EventWriter(store)
    writer.write(_cold_starts_beside_a_warm_invocation(tenant, False, name))
    writer.health.flush()
    peaks = stored_peaks(store, tenant)
    assert [peaks.get(("function", name, 1, s), 0) for s in range(6)] == [1, 4, 4, 1, 1, 0]
    # a server takes a statement's parameters in its URL (1 MiB at most, a proxy's far less): however many inits
    # a minute holds, they are not among them
    sent: list[dict[str, Any]] = []

    class Recording:
        def command(self, sql: str, parameters: dict[str, Any]) -> Any:
            sent.append(parameters)
            return store.command(sql, parameters=parameters)

        def query(self, sql: str, parameters: dict[str, Any]) -> Any:
            return store.query(sql, parameters=parameters)

    start = int(BASE.timestamp())
    recompute_concurrency(Recording(), tenant, start, start + 5)  # type: ignore[arg-type]
    assert sent and all(len(urlencode(p, doseq=True)) < 1024 for p in sent)


def test_an_init_report_a_millisecond_after_its_invocation_started_counts_the_environment_once(store) -> None:
    """The Telemetry initReport's time and the invocation's start (the REPORT's time less its duration) come from
    different facts and may disagree by a millisecond: the environment is still one."""
    tenant = f"handoff-{uuid.uuid4().hex[:8]}"
    cold = Inv("orders", "cold", "1", 1_000, 500, "success", 300, "first", False)
    events = facts(cold) + init_reports("orders", "cold", 1_001, 300, ("telemetry",))
    for e in events:
        e.tenant = tenant
    writer = EventWriter(store)
    writer.write(events)
    writer.health.flush()
    peaks = {b: p for (scope, _k, res, b), p in stored_peaks(store, tenant).items() if res == 1 and scope == "function"}
    assert max(peaks.values()) == 1


def _write_each(store: Client, batches: list[list[Event]], tenant: str) -> None:
    """Each batch stored and its buckets rebuilt before the next, as a processor does with batches far apart."""
    writer = EventWriter(store)
    for batch in batches:
        for e in batch:
            e.tenant = tenant
        writer.write(batch)
        writer.health.flush()


def test_a_rebuild_of_a_later_minute_still_counts_an_invocation_running_since_long_before(store) -> None:
    """A rebuild reads facts from seconds before its window, not from the longest invocation before it: a report
    states its own start, so an invocation of 14 minutes still counts in a minute it spans, rebuilt on its own."""
    tenant = f"long-{uuid.uuid4().hex[:8]}"
    long = Inv("orders", "long", "1", 0, 840_000, "success", None, "first", True)
    short = Inv("orders", "short", "1", 420_000, 2_000, "success", None, "first", False)
    _write_each(store, [facts(long), facts(short)], tenant)
    peaks = stored_peaks(store, tenant)
    assert [peaks.get(("function", "orders", 1, s), 0) for s in (419, 420, 421, 422)] == [1, 2, 2, 1]


def test_the_seconds_a_long_invocation_ran_through_are_rebuilt_on_the_slower_clock(store, monkeypatch) -> None:
    """A long invocation's report: the seconds around its end are rebuilt on the next pass, the seconds it ran
    through only when their slower clock comes round (here: never, unasked) or a flush asks for everything."""
    monkeypatch.setattr(health_aggregates, "SPANNED_EVERY_S", 3600.0)
    monkeypatch.setattr(health_aggregates, "MAX_SPANNED_EVERY_S", 3600.0)
    tenant = f"spanned-{uuid.uuid4().hex[:8]}"
    first = Inv("orders", "first", "1", 0, 30_000, "timeout", None, "first", False)
    second = Inv("orders", "second", "1", 5_000, 40_000, "timeout", None, "first", False)
    events = facts(first) + facts(second)
    for e in events:
        e.tenant = tenant
    writer = EventWriter(store)
    writer.write(facts_of(events, "first"))
    writer.health.flush()  # the first long report: every second it ran through, now
    writer.write(facts_of(events, "second"))
    deadline = time.monotonic() + 60
    while stored_peaks(store, tenant).get(("function", "orders", 1, 44), 0) != 1:  # its end, on the next pass
        assert time.monotonic() < deadline, "the seconds around the report's end were not rebuilt"
        time.sleep(0.1)
    peaks = stored_peaks(store, tenant)
    assert [peaks.get(("function", "orders", 1, s), 0) for s in (10, 20, 29)] == [1, 1, 1]  # not yet: spanned
    writer.health.flush()
    assert_peaks_exact(store, tenant, events)


def test_a_minute_a_request_left_for_an_earlier_copy_of_its_report_is_written_back_empty(store) -> None:
    """A report's later copy lands first, in the next minute; its earlier copy, stored after, moves the request to the
    minute before: the next minute's stored row must not keep counting it."""
    tenant = f"moved-{uuid.uuid4().hex[:8]}"
    inv = Inv("orders", "moved", "1", 59_000, 999, "success", None, "both", False)  # copies at :59.999 and :00.000
    later, earlier = sorted(facts(inv), key=lambda e: e.time, reverse=True)
    _write_each(store, [[later], [earlier]], tenant)
    rows = store.query(
        "SELECT toUnixTimestamp(bucket), invocations FROM function_minutes FINAL WHERE tenant = {tenant:String}",
        parameters={"tenant": tenant},
    ).result_rows
    base = int(BASE.timestamp())
    assert sorted((bucket - base, n) for bucket, n in rows) == [(0, 1), (60, 0)]


def facts_of(events: list[Event], request_id: str) -> list[Event]:
    return [e for e in events if getattr(e, "request_id", "") == request_id]


def test_an_invocation_whose_report_has_no_duration_counts_from_its_start_fact(store) -> None:
    """A report without a duration states no start: its start fact, ten minutes before, says when it began, and a
    rebuild of a minute in between (for another invocation) still reads it."""
    tenant = f"startless-{uuid.uuid4().hex[:8]}"
    common = dict(source="test", function="orders", version="1", request_id="long", account=ACCOUNTS["orders"])
    began = Invocation(event_id="", time=_t(0), kind="start", start_time=_t(0), **common)
    ended = Invocation(event_id="", time=_t(600_000), kind="report", status="success", **common)
    short = Inv("orders", "short", "1", 300_000, 2_000, "success", None, "first", False)
    _write_each(store, [[began, ended], facts(short)], tenant)
    peaks = stored_peaks(store, tenant)
    assert [peaks.get(("function", "orders", 1, s), 0) for s in (299, 300, 301, 302)] == [1, 2, 2, 1]
