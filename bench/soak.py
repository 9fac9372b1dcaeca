"""`fnscope up` under a fleet's live traffic for minutes on end: is its memory flat, and its CPU steady?

    python -m bench.soak [--minutes 10] [--functions 64] [--calls-per-second 400]

A 50-second run of `bench.ingest` replays the same batches, whose event times stand still, so it never holds what
a long-running process holds: the alert evaluator's eleven minutes of counts, the store's parts growing and merging,
the search and lookup views filling. Here the simulator sends a fleet in real time, a fresh minute at a time (new
request ids, current times, the same functions; every format: Telemetry batches, CloudWatch via Firehose, API Gateway access logs,
CloudTrail files), as `fnscope up --simulate` does at a lower rate. Printed each minute: `fnscope up`'s share of a
core, its resident memory, and the events the senders had acknowledged. The reference for memory is the process
itself after its first minute; the README's goal is memory flat over ten minutes.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.figures import cpu_seconds
from bench.ingest import payloads, rss_mb, running_up
from fnscope.simulator.scheduler import default_functions
from fnscope.simulator.sender import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--functions", type=int, default=64)
    parser.add_argument("--calls-per-second", type=float, default=400.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fnscope-soak-"))
    try:
        with running_up(work / "up", payloads(20, seed=99)[:1]) as (proc, url):
            print(
                f"{args.functions} functions, {args.calls_per_second:g} calls a second, sent in real time for "
                f"{args.minutes} minutes"
            )
            fleet = default_functions(args.functions, random.Random(1), args.calls_per_second)  # one fleet throughout
            first_rss = None
            for minute in range(1, args.minutes + 1):
                cpu, began = cpu_seconds(proc.pid), time.monotonic()
                summary = run(
                    url, args.functions, args.calls_per_second, 60, seed=minute, quiet=True, appsync=True, specs=fleet
                )
                share = (cpu_seconds(proc.pid) - cpu) / (time.monotonic() - began)
                rss = rss_mb(proc.pid)
                first_rss = first_rss or rss
                print(
                    f"  minute {minute:>2}: {summary.events_sent:,} events sent ({summary.requests_failed} requests "
                    f"failed); fnscope up {share:6.1%} of a core; resident memory {rss:,.0f} MB "
                    f"({rss - first_rss:+,.0f} MB since minute 1)",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
