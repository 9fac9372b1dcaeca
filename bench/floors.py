"""The least a workload can cost in fnscope's stack, measured in the same run: the ceiling on MB per CPU-second.

Three floors, each the cheapest form of a step no request or write can skip:
- HTTP: an empty Telemetry batch (``[]``) through a running `fnscope up`: the server, routing, auth, the
  worker-thread hop and the answer, with nothing to parse or store (measured by bench/ingest.py, which runs it);
- parsing: the workload's payloads through the Python parsers into the pydantic events, nothing else (what a
  collector does with every byte), here in this process;
- a write: a report and a log line written into a chDB store of its own, here in this process. A write costs
  about this whatever it holds: ClickHouse makes a part per table.
A request pays HTTP, every byte pays parsing, and senders that each wait for their 2xx before sending again can
share a write at most ``senders`` at a time. Merges, health rebuilds and alert evaluation come on top, so the
ceiling is above what any run of this stack can reach.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import TYPE_CHECKING

from bench.figures import cpu_seconds
from fnscope.collector.formats import apigateway, cloudtrail, firehose, telemetry
from fnscope.collector.formats.base import Parsed
from fnscope.events import Signal
from fnscope.sink import IngestContext

if TYPE_CHECKING:
    from bench.ingest import Payload

PARSERS: dict[str, Callable[[bytes, IngestContext], Parsed]] = {
    "/ingest/telemetry": telemetry.parse,
    "/ingest/firehose": firehose.parse,
    "/ingest/apigateway": apigateway.parse,
    "/ingest/cloudtrail": cloudtrail.parse,
}
GOAL_MB_PER_CPU_S = 20.0


def parse_all(items: list[Payload]) -> list[Parsed]:
    return [PARSERS[p.path](p.body, IngestContext(tenant="default", params=p.params)) for p in items]


def parse_seconds(items: list[Payload]) -> dict[str, float]:
    """CPU seconds to parse every payload once, per ingest path (after one untimed pass: imports, caches)."""
    parse_all(items)
    seconds: dict[str, float] = {}
    for path in PARSERS:
        started = cpu_seconds(os.getpid())
        parse_all([p for p in items if p.path == path])
        seconds[path] = cpu_seconds(os.getpid()) - started
    return seconds


def write_seconds(items: list[Payload], directory: Path, writes: int = 40) -> float:
    """CPU seconds of one write of a report and a log line into a fresh chDB store (health rebuilds off)."""
    from fnscope.processors.store import open_store
    from fnscope.processors.writer import EventWriter

    events = [
        e for parsed in parse_all([p for p in items if p.path == "/ingest/telemetry"][:50]) for e in parsed.events
    ]
    pair = [next(e for e in events if e.signal is s) for s in (Signal.INVOCATION, Signal.LOG)]
    writer = EventWriter(open_store(f"chdb://{directory}"))
    writer.health.stop()  # a rebuild is work of its own, not part of the write's floor
    writer.write(pair)
    started = cpu_seconds(os.getpid())
    for _ in range(writes):
        writer.write(pair)
    return (cpu_seconds(os.getpid()) - started) / writes


@dataclass
class Floors:
    http_s: float  # CPU per request
    parse_by_path: dict[str, float]  # CPU to parse the workload's payloads of each ingest path
    write_s: float  # CPU per write

    @property
    def parse_s(self) -> float:
        return sum(self.parse_by_path.values())

    def report(self, items: list[Payload], senders: int) -> None:
        raw = sum(p.raw_json_bytes for p in items)
        requests, writes = len(items), ceil(len(items) / senders)
        http, writing = requests * self.http_s, writes * self.write_s
        total = http + self.parse_s + writing
        budget = raw / (GOAL_MB_PER_CPU_S * 1e6)
        print("  floors, measured in this run (the least each step costs in this stack):")
        print(
            f"    HTTP: an empty Telemetry batch through fnscope up      {self.http_s * 1000:>6.2f} ms CPU per request"
        )
        print(
            f"    parsing alone (Python parsers into pydantic events)   {raw / self.parse_s / 1e6:>6.1f} MB of raw JSON/CPU-s"
        )
        by_format = ", ".join(
            f"{path.removeprefix('/ingest/')} {sum(p.raw_json_bytes for p in items if p.path == path) / cpu / 1e6:.0f}"
            for path, cpu in self.parse_by_path.items()
            if cpu > 0
        )
        print(f"      by format: {by_format}")
        print(f"    one write of a report and a log line into chDB        {self.write_s * 1000:>6.1f} ms CPU per write")
        print(
            f"  this workload: {requests:,} requests, {raw / 1e6:.1f} MB raw JSON, {senders} senders waiting for their "
            f"2xx, so at least {writes:,} writes"
        )
        print(
            f"    floor: HTTP {http:.2f} + parsing {self.parse_s:.2f} + writes {writing:.2f} = {total:.2f} CPU-s; "
            f"ceiling {raw / total / 1e6:.1f} MB of raw JSON per CPU-second (merges, health, alerts not counted)"
        )
        print(
            f"    {GOAL_MB_PER_CPU_S:.0f} MB/CPU-s allows {budget:.2f} CPU-s for everything "
            f"({budget / requests * 1000:.2f} ms per request): parsing alone takes {self.parse_s:.2f}, "
            f"HTTP {http:.2f}, writes {writing:.2f}"
        )
