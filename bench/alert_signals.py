"""The alert evaluator's CPU and memory at a fleet's steady state, minute by minute, beside the cost of only feeding it.

    python -m bench.alert_signals [--functions 64] [--calls-per-second 1400] [--minutes 12] [--pass-every 0.5]

The evaluator keeps the last ``keep_s`` seconds of runs in memory (the longest rule window, 10 minutes for the
canary rule, plus a minute), and every pass measures each rule for every function a batch touched. So what it costs
depends on how much history it holds: a short benchmark run against `fnscope up` never reaches the steady state,
which this one does in-process. Invocations are made directly (a start and a REPORT each, durations exponential
around 200 ms, functions picked at random), with the event clock driven by the benchmark: a pass every
``--pass-every`` seconds of event time, as the alert service evaluates the batches stored meanwhile together, and a
tick each second.

Printed per minute of events: the share of a core the passes and ticks took, and beside it, measured in the same
run, the share that only feeding the same events to the signals (no rule measured) takes, and the process's
resident memory.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import time
import uuid
from datetime import UTC, datetime

from bench.ingest import rss_mb
from fnscope.alerts.evaluator import Evaluator
from fnscope.alerts.rules import BUILTIN_RULES
from fnscope.alerts.signals import Signals
from fnscope.events import Invocation, stable_id

START = 1_750_000_000.0


def invocations(rng: random.Random, functions: int, first: int, count: int, at: float, span_s: float) -> list:  # type: ignore[type-arg]
    """``count`` runs ending over ``[at, at + span_s)``: a start and a REPORT each, without validation (fast)."""
    events = []
    for i in range(count):
        n = first + i
        duration_ms = rng.expovariate(1 / 200)
        end = at + i * span_s / count
        begin = datetime.fromtimestamp(end - duration_ms / 1000, UTC)
        # ids as the parsers make them: a request id is a UUID, an event id a 32-digit hash (their strings are
        # much of what the evaluator holds)
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        common = {"tenant": "default", "function": f"fn{rng.randrange(functions)}", "request_id": request_id}
        events.append(Invocation.model_construct(event_id=stable_id(n, "start"), time=begin, kind="start", **common))
        events.append(
            Invocation.model_construct(
                event_id=stable_id(n, "report"), time=datetime.fromtimestamp(end, UTC), kind="report", status="success",
                version="1", account="1", start_time=begin, duration_ms=duration_ms,
                billed_duration_ms=math.ceil(duration_ms), memory_size_mb=512, **common,
            )
        )  # fmt: skip
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=int, default=64)
    parser.add_argument("--calls-per-second", type=int, default=1400)
    parser.add_argument("--minutes", type=int, default=12)
    parser.add_argument("--pass-every", type=float, default=0.5)
    args = parser.parse_args()

    rules = [r for r in BUILTIN_RULES if r.enabled]
    clock = [START]
    evaluator = Evaluator(rules, Signals.for_rules(rules, 1000), clock=lambda: clock[0])
    fed_only = Signals.for_rules(rules, 1000)  # the reference: the same events observed and pruned, no rule measured
    keep_s, runs_keep_s = fed_only.keep_s, fed_only.runs_keep_s
    rng = random.Random(7)
    per_pass = round(args.calls_per_second * args.pass_every)
    print(
        f"{args.functions} functions, {args.calls_per_second:,} calls a second, a pass every {args.pass_every:g} s, "
        f"{len(rules)} built-in rules, {keep_s:g} s of counts kept and {runs_keep_s:g} s of runs"
    )
    passes_per_minute = round(60 / args.pass_every)
    next_tick = START + 1
    made = 0
    for minute in range(1, args.minutes + 1):
        evaluating = feeding = 0.0
        for _ in range(passes_per_minute):
            at = clock[0]
            batch = invocations(rng, args.functions, made, per_pass, at, args.pass_every)
            made += per_pass
            clock[0] = at + args.pass_every
            ticks = clock[0] >= next_tick
            next_tick += ticks
            began = time.process_time()
            evaluator.ingest(batch)
            if ticks:
                evaluator.tick()
            middle = time.process_time()
            fed_only.observe(batch, clock[0])
            if ticks:
                fed_only.prune(clock[0])
            feeding += time.process_time() - middle
            evaluating += middle - began
        runs = sum(len(fn.runs) for fn in evaluator.signals.functions.values())
        print(
            f"  minute {minute:>2}: evaluator {evaluating / 60:6.1%} of a core; only feeding the signals "
            f"{feeding / 60:6.1%}; {runs:,} runs kept; resident memory {rss_mb(os.getpid()):,.0f} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
